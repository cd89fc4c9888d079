// Pointwise functions besides activations.h: exact (erf) GELU, CLIP's quick GELU, ReLU, the
// elementwise product of T5's gated feed-forward, and the fills, sums and affine maps that models
// and the pipeline apply to whole tensors (so that no model loops over a tensor's memory).
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
// out = a + b elementwise; same rules.
void add(const Tensor& a, const Tensor& b, Tensor& out);

// Every element of out (F32 or BF16) = value (rounded to bf16 for BF16).
void fill(Tensor& out, float value);
// out = x · s elementwise. x, out: F32 or BF16, one shape; out may be x.
void scale(const Tensor& x, float s, Tensor& out);
// out = x / s elementwise (a division, as torch's tensor / float; not x · (1/s)); same rules.
void divide_scalar(const Tensor& x, float s, Tensor& out);
// out = x + s elementwise; same rules. x - s is add_scalar(x, -s): the same rounding.
void add_scalar(const Tensor& x, float s, Tensor& out);
// out = e^x elementwise (std::exp in fp32); same rules.
void exp(const Tensor& x, Tensor& out);
// out = clamp(x, lo, hi) elementwise (std::clamp: NaN stays NaN, -0 stays -0); same rules.
void clamp(const Tensor& x, float lo, float hi, Tensor& out);
// out = clamp(x · scale + shift, lo, hi) elementwise; same rules. The product and the sum may be
// one fused multiply-add (one rounding), as the compiler contracts them everywhere else.
// diffusers' image postprocess (x / 2 + 0.5).clamp(0, 1) is scale_shift_clamp(x, 0.5, 0.5, 0, 1).
void scale_shift_clamp(const Tensor& x, float scale, float shift, float lo, float hi, Tensor& out);

// True when no element of x (F32 or BF16) is NaN or infinite.
bool all_finite(const Tensor& x);

// Per-device bodies, chosen in pointwise.cc (cpu/pointwise.cc).
namespace impl {
template <DeviceKind D>
bool all_finite(const Tensor& x);
template <DeviceKind D>
void gelu_erf(const Tensor& x, Tensor& out);
template <DeviceKind D>
void quick_gelu(const Tensor& x, Tensor& out);
template <DeviceKind D>
void relu(const Tensor& x, Tensor& out);
template <DeviceKind D>
void multiply(const Tensor& a, const Tensor& b, Tensor& out);
template <DeviceKind D>
void add(const Tensor& a, const Tensor& b, Tensor& out);
template <DeviceKind D>
void fill(Tensor& out, float value);
template <DeviceKind D>
void scale(const Tensor& x, float s, Tensor& out);
template <DeviceKind D>
void divide_scalar(const Tensor& x, float s, Tensor& out);
template <DeviceKind D>
void add_scalar(const Tensor& x, float s, Tensor& out);
template <DeviceKind D>
void exp(const Tensor& x, Tensor& out);
template <DeviceKind D>
void clamp(const Tensor& x, float lo, float hi, Tensor& out);
template <DeviceKind D>
void scale_shift_clamp(const Tensor& x, float scale, float shift, float lo, float hi, Tensor& out);
}  // namespace impl

}  // namespace paradiff::kernels
