// Pointwise functions the text encoders need besides activations.h: exact (erf) GELU, CLIP's
// quick GELU, ReLU, and the elementwise product of T5's gated feed-forward.
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// out = x · Φ(x) = 0.5 x (1 + erf(x / √2)) elementwise (torch's GELU, approximate="none").
// x: F32 or BF16; out: F32 or BF16, same shape; out may be x. Computed in fp32.
void gelu_erf(const Tensor& x, Tensor& out);
// out = x · sigmoid(1.702 x) elementwise (OpenAI CLIP's QuickGELU); same rules.
void quick_gelu(const Tensor& x, Tensor& out);
// out = max(x, 0) elementwise (NaN stays NaN); same rules.
void relu(const Tensor& x, Tensor& out);
// out = a · b elementwise. a, b, out: F32 or BF16, one shape; out may be a or b.
void multiply(const Tensor& a, const Tensor& b, Tensor& out);

}  // namespace paradiff::kernels
