#include "paradiff/python/process_runtime.h"

#include <cstdio>
#include <mutex>
#include <vector>

#include "paradiff/core/error.h"
#include "paradiff/dist/distributed_runtime.h"
#include "paradiff/dist/self_communicator.h"

namespace paradiff::python {

namespace {

struct State {
  std::unique_ptr<dist::DistributedRuntime> runtime;
  bool ended = false;
  std::vector<std::weak_ptr<EngineHandle>> engines;
};

State& state() {
  static State s;
  return s;
}

}  // namespace

dist::Communicator& process_world() {
  State& s = state();
  PARADIFF_CHECK(!s.ended, "the paradiff runtime has shut down (interpreter exit)");
  if (!s.runtime) {
    int argc = 0;
    char** argv = nullptr;
    s.runtime = std::make_unique<dist::DistributedRuntime>(&argc, &argv);
  }
  return s.runtime->world();
}

void shutdown_runtime() {
  State& s = state();
  if (s.ended) return;
  for (auto& weak : s.engines)
    if (auto handle = weak.lock()) {
      handle->engine.reset();
      handle->own_world.reset();
    }
  s.engines.clear();
  s.runtime.reset();  // MPI_Finalize
  s.ended = true;
}

void abort_job_if_parallel(const std::string& message) {
  State& s = state();
  if (!s.runtime || s.ended) return;
  dist::Communicator& world = s.runtime->world();
  if (world.size() > 1) world.abort(message, 1);  // "paradiff: rank R failed: <message>"
}

engine::Engine& EngineHandle::get() {
  PARADIFF_CHECK(engine != nullptr, "this pipeline was closed when the paradiff runtime shut down");
  return *engine;
}

std::shared_ptr<EngineHandle> open_engine(const engine::EngineOptions& options, bool independent) {
  dist::Communicator& world = process_world();
  auto handle = std::make_shared<EngineHandle>();
  if (independent) handle->own_world = std::make_unique<dist::SelfCommunicator>();
  handle->engine =
      std::make_unique<engine::Engine>(independent ? *handle->own_world : world, options);
  state().engines.push_back(handle);
  return handle;
}

}  // namespace paradiff::python
