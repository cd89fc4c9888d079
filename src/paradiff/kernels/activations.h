// Pointwise activations: GELU (tanh approximation, as FLUX's feed-forward uses) and SiLU.
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// out = gelu_tanh(x) elementwise. x: F32 or BF16; out: F32 or BF16, same shape; out may be x.
void gelu_tanh(const Tensor& x, Tensor& out);
// out = x * sigmoid(x) elementwise; same rules.
void silu(const Tensor& x, Tensor& out);

// Per-device bodies, chosen in activations.cc (cpu/activations.cc).
namespace impl {
template <DeviceKind D>
void gelu_tanh(const Tensor& x, Tensor& out);
template <DeviceKind D>
void silu(const Tensor& x, Tensor& out);
}  // namespace impl

}  // namespace paradiff::kernels
