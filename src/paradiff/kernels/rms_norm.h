// RMSNorm with a weight over the last dim, as FLUX normalises per-head queries and keys.
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// out = x / sqrt(mean(x^2) + eps) · weight, over the last dim D. x: (..., D) F32 or BF16;
// weight: (D) F32; out: same shape as x, F32 or BF16. out may be x when both are F32.
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out);

// Per-device body, chosen in rms_norm.cc (cpu/rms_norm.cc).
namespace impl {
template <DeviceKind D>
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out);
}  // namespace impl

}  // namespace paradiff::kernels
