#include "paradiff/dist/distributed_runtime.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "paradiff/core/cpu_isa.h"
#include "paradiff/core/error.h"
#include "paradiff/core/logging.h"
#include "paradiff/dist/mpi_communicator.h"
#include "paradiff/dist/self_communicator.h"

namespace paradiff::dist {

namespace {
constexpr const char* kStartFailure = "paradiff: error: cannot start the distributed runtime: %s\n";
}  // namespace

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
  if (world_->size() > 1) {
    set_log_rank(world_->rank());
    try {
      agree_on_bf16_arithmetic();
    } catch (...) {
      // Every rank fails here together (the agreement's reduction tells each one): end MPI
      // cleanly before reporting.
      world_.reset();
      MPI_Finalize();
      throw;
    }
  }
}

void DistributedRuntime::agree_on_bf16_arithmetic() {
  // 1: native, 0: fp32, -1: this rank could not decide (a bad PARADIFF_BF16_ARITHMETIC or
  // PARADIFF_MAX_ISA). Every rank joins the reduction even then, so that none waits in it alone.
  int64_t native = -1;
  std::string failure;
  try {
    native = native_bf16_alone() ? 1 : 0;
  } catch (const std::exception& e) {
    failure = e.what();
    // Said before the reduction: once it completes, the other ranks end the job, and the launcher
    // may kill this process before it got to report why (seen under load: only the other rank's
    // "another rank could not decide" reached the terminal).
    std::fprintf(stderr, kStartFailure, failure.c_str());
    std::fflush(stderr);
  }
  world_->allreduce(&native, 1, ReduceType::I64, ReduceOp::Min);
  if (!failure.empty()) throw ReportedStartError(failure);
  PARADIFF_CHECK(native >= 0, "another rank could not decide how to compute bf16 (see its error)");
  set_job_native_bf16(native == 1);
}

DistributedRuntime::~DistributedRuntime() {
  world_.reset();
  if (mpi_) MPI_Finalize();
}

int run_distributed(int argc, char** argv, const std::function<int(Communicator& world)>& body) {
  std::unique_ptr<DistributedRuntime> runtime;
  try {
    runtime = std::make_unique<DistributedRuntime>(&argc, &argv);
  } catch (const ReportedStartError&) {
    return 1;  // printed already
  } catch (const std::exception& e) {
    std::fprintf(stderr, kStartFailure, e.what());
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
