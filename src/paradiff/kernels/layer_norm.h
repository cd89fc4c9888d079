// LayerNorm without affine parameters, optionally fused with adaLN modulation, as FLUX's
// AdaLayerNormZero / ZeroSingle / Continuous use it: out = LN(x)·(1 + scale) + shift.
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// x: (B, S, C) F32 or BF16. shift, scale: (B, C) F32 (one row per batch entry, broadcast over
// S), or undefined Tensors for a plain LayerNorm. out: (B, S, C) F32 or BF16. Statistics in fp32
// with the biased variance, as torch.nn.LayerNorm. out may be x when both are F32.
void layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                         Tensor& out);

// Plain LayerNorm over the last dim of x (any leading dims).
void layer_norm(const Tensor& x, float eps, Tensor& out);

// Per-device bodies, chosen in layer_norm.cc (cpu/layer_norm.cc).
namespace impl {
template <DeviceKind D>
void layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                         Tensor& out);
template <DeviceKind D>
void layer_norm(const Tensor& x, float eps, Tensor& out);
}  // namespace impl

}  // namespace paradiff::kernels
