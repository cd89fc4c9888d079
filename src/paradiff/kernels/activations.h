// Pointwise activations: GELU (tanh approximation, as FLUX's feed-forward uses) and SiLU.
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// out = gelu_tanh(x) elementwise. x: F32 or BF16; out: F32 or BF16, same shape; out may be x.
void gelu_tanh(const Tensor& x, Tensor& out);
// out = x * sigmoid(x) elementwise; same rules.
void silu(const Tensor& x, Tensor& out);

}  // namespace paradiff::kernels
