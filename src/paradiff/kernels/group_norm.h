// GroupNorm (torch.nn.GroupNorm with affine weight and bias) on channels-last activations,
// optionally fused with SiLU, as the VAE's ResnetBlock2D, attention and output norms use it.
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// x: (N, ..., C) F32, channels last (NHWC for images; any number of positions between N and
// C). The C channels form `num_groups` groups of C / num_groups consecutive channels; each
// (n, group) is normalised over all its positions and channels with the biased variance, as
// torch does: y = (x - mean) / sqrt(var + eps) · gamma[c] + beta[c], then y · sigmoid(y) when
// `silu`. gamma, beta: [C], any floating dtype. out: F32 of x's shape; it may be x.
// Statistics are accumulated in double, so long groups (millions of values) keep fp32
// accuracy.
void group_norm(const Tensor& x, int64_t num_groups, const Tensor& gamma, const Tensor& beta,
                float eps, Tensor& out, bool silu = false);

// Per-device body, chosen in group_norm.cc (cpu/group_norm.cc).
namespace impl {
template <DeviceKind D>
void group_norm(const Tensor& x, int64_t num_groups, const Tensor& gamma, const Tensor& beta,
                float eps, Tensor& out, bool silu);
}  // namespace impl

}  // namespace paradiff::kernels
