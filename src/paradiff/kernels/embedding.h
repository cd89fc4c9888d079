// Rows of an embedding table by index (torch.nn.Embedding): the text encoders' token lookups and
// T5's relative position bias.
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// out[r] = table[ids[r]], converted to out's dtype. table: (N, C) F32 or BF16; ids: (M) I64,
// each in [0, N); out: (M, C) F32 or BF16, not overlapping table.
void embedding(const Tensor& table, const Tensor& ids, Tensor& out);

// Per-device body, chosen in embedding.cc (cpu/embedding.cc). It checks the ids' range, as only
// the device can read them.
namespace impl {
template <DeviceKind D>
void embedding(const Tensor& table, const Tensor& ids, Tensor& out);
}  // namespace impl

}  // namespace paradiff::kernels
