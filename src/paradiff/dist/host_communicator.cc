#include "paradiff/dist/host_communicator.h"

#include <sys/stat.h>

#include "paradiff/dist/mpi_communicator.h"

namespace paradiff::dist {

namespace {
// The PID namespace's inode number, as a color (0 when it cannot be read).
int pid_namespace_color() {
  struct stat st {};
  if (stat("/proc/self/ns/pid", &st) != 0) return 0;
  return static_cast<int>(st.st_ino & 0x3fffffff);
}
}  // namespace

std::unique_ptr<Communicator> host_communicator(const Communicator& world) {
  const auto* mpi = dynamic_cast<const MpiCommunicator*>(&world);
  if (mpi == nullptr) return world.split(0, world.rank());
  MPI_Comm shared;
  check_mpi(MPI_Comm_split_type(mpi->handle(), MPI_COMM_TYPE_SHARED, world.rank(), MPI_INFO_NULL,
                                &shared),
            "MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)");
  MpiCommunicator node(shared);
  return node.split(pid_namespace_color(), node.rank());
}

}  // namespace paradiff::dist
