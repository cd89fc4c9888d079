// Tensors over a communicator: a broadcast that carries the shape and dtype too, so that only the
// root needs to know them (e.g. prompt embeddings computed once and sent to every rank).
#pragma once

#include "paradiff/core/tensor.h"
#include "paradiff/dist/communicator.h"

namespace paradiff::dist {

// On `root`, `t` is sent; elsewhere it is replaced by the received tensor.
void broadcast_tensor(Communicator& comm, Tensor& t, int root);

}  // namespace paradiff::dist
