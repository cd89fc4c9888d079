#include "paradiff/dist/distributed_runtime.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "paradiff/core/error.h"
#include "paradiff/core/logging.h"
#include "paradiff/dist/mpi_communicator.h"
#include "paradiff/dist/self_communicator.h"

namespace paradiff::dist {

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(var) != nullptr) return true;
  return false;
}

DistributedRuntime::DistributedRuntime(int* argc, char*** argv) : mpi_(launched_by_mpi()) {
  if (!mpi_) {
    world_ = std::make_unique<SelfCommunicator>();
    return;
  }
  int provided = 0;
  // One thread in MPI at a time: the main thread, or ring attention's progress thread while the
  // main thread computes (OpenMP threads never call MPI).
  check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  world_ = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
  if (world_->size() > 1) set_log_rank(world_->rank());
}

DistributedRuntime::~DistributedRuntime() {
  world_.reset();
  if (mpi_) MPI_Finalize();
}

int run_distributed(int argc, char** argv, const std::function<int(Communicator& world)>& body) {
  std::unique_ptr<DistributedRuntime> runtime;
  try {
    runtime = std::make_unique<DistributedRuntime>(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "paradiff: error: cannot start the distributed runtime: %s\n", e.what());
    return 1;
  }
  Communicator& world = runtime->world();
  std::string failure;
  int status = 1;
  try {
    status = body(world);
  } catch (const Error& e) {
    failure = e.what();
  } catch (const std::exception& e) {
    failure = str_cat("internal error: ", e.what());
  }
  if (!failure.empty()) {
    if (world.size() > 1) world.abort(failure, 1);
    std::fprintf(stderr, "paradiff: error: %s\n", failure.c_str());
    return 1;
  }
  return status;
}

}  // namespace paradiff::dist
