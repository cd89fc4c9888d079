// Merging two partial attention results over disjoint K/V sets, given each one's log-sum-exp:
// what ring attention does after every K/V block it visits.
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// out, lse hold (out_a, lse_a) and receive the merge with (out_b, lse_b), in place:
//   out = out_a - sigmoid(lse_b - lse_a) * (out_a - out_b)
//   lse = lse_a - logsigmoid(lse_a - lse_b)      (= max + log1p(exp(-|lse_a - lse_b|)))
// the stable form of out = (e^lse_a out_a + e^lse_b out_b) / (e^lse_a + e^lse_b).
// lse = -inf marks an empty partial (attention over zero keys): merging with it returns the
// other side unchanged, and two empty sides stay empty; no NaN either way.
// out, out_b: f32 (B, S, H, D); lse, lse_b: f32 (B, S, H).
void merge_attention(Tensor& out, Tensor& lse, const Tensor& out_b, const Tensor& lse_b);

// Per-device body, chosen in attention_merge.cc (cpu/attention_merge.cc).
namespace impl {
template <DeviceKind D>
void merge_attention(Tensor& out, Tensor& lse, const Tensor& out_b, const Tensor& lse_b);
}  // namespace impl

}  // namespace paradiff::kernels
