// A job in which rank 1 fails while the other ranks wait in a collective: the job must end
// promptly with a non-zero status and a message, never hang. Modes: "throw" (an exception, which
// run_distributed turns into MPI_Abort) and "kill" (the process dies by SIGKILL, which mpirun
// notices).
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

#include "paradiff/core/error.h"
#include "paradiff/dist/distributed_runtime.h"

int main(int argc, char** argv) {
  const bool kill_mode = argc > 1 && std::strcmp(argv[1], "kill") == 0;
  return paradiff::dist::run_distributed(argc, argv, [&](paradiff::dist::Communicator& world) {
    if (world.rank() == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      if (kill_mode) std::raise(SIGKILL);
      throw paradiff::Error("injected failure in the middle of a run");
    }
    world.barrier();  // would wait forever for rank 1 without the abort
    return 0;
  });
}
