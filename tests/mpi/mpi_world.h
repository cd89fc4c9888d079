// The MPI test binary's world: tests launched through mpirun reach the world communicator here.
#pragma once

#include "paradiff/dist/communicator.h"

namespace paradiff::testing {

dist::Communicator& world();
// The world size as the launcher announces it, readable before MPI starts (test registration
// runs at static-initialisation time).
int launched_world_size();

}  // namespace paradiff::testing
