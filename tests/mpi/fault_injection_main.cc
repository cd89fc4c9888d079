// A job in which rank 1 fails while the other ranks wait in a collective: the job must end
// promptly with a non-zero status and a message, never hang. Modes: "throw" (an exception, which
// run_distributed turns into MPI_Abort) and "kill" (the process dies by SIGKILL, which mpirun
// notices). "handoff-kill": rank 1 dies by SIGKILL while rank 0 waits for it in the point-to-point
// receive a placed model uses to take the hidden states from the previous stage.
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

#include "paradiff/core/error.h"
#include "paradiff/dist/distributed_runtime.h"
#include "paradiff/dist/tensor_transfer.h"

int main(int argc, char** argv) {
  const bool kill_mode = argc > 1 && std::strcmp(argv[1], "kill") == 0;
  const bool handoff = argc > 1 && std::strcmp(argv[1], "handoff-kill") == 0;
  return paradiff::dist::run_distributed(argc, argv, [&](paradiff::dist::Communicator& world) {
    if (handoff) {
      if (world.rank() == 1) {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        std::raise(SIGKILL);
      }
      if (world.rank() == 0) paradiff::dist::receive_tensor(world, 1, 7);  // would wait forever
      world.barrier();
      return 0;
    }
    if (world.rank() == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      if (kill_mode) std::raise(SIGKILL);
      throw paradiff::Error("injected failure in the middle of a run");
    }
    world.barrier();  // would wait forever for rank 1 without the abort
    return 0;
  });
}
