// The process's distributed runtime: MPI when started under mpirun (or another MPI launcher),
// a world of one otherwise. It owns MPI's lifetime and makes one rank's failure end the job.
#pragma once

#include <functional>
#include <memory>

#include "paradiff/core/error.h"
#include "paradiff/dist/communicator.h"

namespace paradiff::dist {

// Thrown by DistributedRuntime's constructor on the rank whose start-up failed, after it printed
// the reason to stderr: once the other ranks learn of the failure they end the job, and the
// launcher may kill this process before it could report. what() still holds the reason.
class ReportedStartError : public Error {
 public:
  using Error::Error;
};

class DistributedRuntime {
 public:
  // Initialises MPI if a launcher started this process (OpenMPI, PMI or PMIx variables set), and
  // then makes every rank compute bf16 the same way (core/cpu_isa.h, set_job_native_bf16).
  DistributedRuntime(int* argc, char*** argv);
  ~DistributedRuntime();  // finalises MPI
  DistributedRuntime(const DistributedRuntime&) = delete;
  DistributedRuntime& operator=(const DistributedRuntime&) = delete;

  Communicator& world() { return *world_; }
  bool uses_mpi() const { return mpi_; }

 private:
  // Natively only where every rank would (an allreduce of native_bf16_alone()).
  void agree_on_bf16_arithmetic();

  bool mpi_ = false;
  std::unique_ptr<Communicator> world_;
};

// True when the environment says an MPI launcher started this process.
bool launched_by_mpi();

// Runs `body` with the world communicator and returns its exit status. An exception on any rank
// prints "rank R failed: <reason>" and aborts the whole job at once (MPI_Abort), so that no other
// rank waits forever in a collective.
int run_distributed(int argc, char** argv, const std::function<int(Communicator& world)>& body);

}  // namespace paradiff::dist
