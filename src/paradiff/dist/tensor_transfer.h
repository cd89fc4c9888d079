// A tensor from one rank to another, with its shape and dtype, so that only the sender needs to
// know them (e.g. finished images sent from each data-parallel replica to rank 0).
#pragma once

#include "paradiff/core/tensor.h"
#include "paradiff/dist/communicator.h"

namespace paradiff::dist {

void send_tensor(Communicator& comm, const Tensor& t, int dest, int tag);
// What send_tensor(comm, t, <this rank>, tag) sent from `source`.
Tensor receive_tensor(Communicator& comm, int source, int tag);

}  // namespace paradiff::dist
