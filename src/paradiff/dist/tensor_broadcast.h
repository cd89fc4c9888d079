// Tensors over a communicator: a broadcast that carries the shape and dtype too, so that only the
// root needs to know them (e.g. prompt embeddings computed once and sent to every rank).
#pragma once

#include <map>
#include <string>

#include "paradiff/core/tensor.h"
#include "paradiff/dist/communicator.h"

namespace paradiff::dist {

// On `root`, `t` is sent; elsewhere it is replaced by the received tensor.
void broadcast_tensor(Communicator& comm, Tensor& t, int root);
// A set of named tensors (a pipeline's conditioning): names, then each tensor in name order.
// Elsewhere than on `root`, `tensors` is replaced by what root holds.
void broadcast_tensors(Communicator& comm, std::map<std::string, Tensor>& tensors, int root);
// A string (e.g. a serialised request) from `root` to every rank.
void broadcast_string(Communicator& comm, std::string& text, int root);

}  // namespace paradiff::dist
