// The ranks of a world that run on this host and can share memory: MPI_Comm_split_type with
// MPI_COMM_TYPE_SHARED, then split again by PID namespace (ranks that cannot see each other's
// /proc entries cannot open each other's shared segments). Ordered as in the world.
#pragma once

#include <memory>

#include "paradiff/dist/communicator.h"

namespace paradiff::dist {

// Collective over `world`. A world that is not MPI's (a world of one) is its own host.
std::unique_ptr<Communicator> host_communicator(const Communicator& world);

}  // namespace paradiff::dist
