// adaLN modulation and gated residuals, the glue of FLUX's blocks. Per-batch rows (B, C) are
// broadcast over the sequence.
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// out = x·(1 + scale) + shift. x: (B, S, C) F32 or BF16; shift, scale: (B, C) F32;
// out: (B, S, C) F32 or BF16; out may be x when both are F32.
void modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, Tensor& out);

// x += gate·y, in place. x: (B, S, C) F32; gate: (B, C) F32; y: (B, S, C) F32 or BF16.
void gated_residual_add(Tensor& x, const Tensor& gate, const Tensor& y);

// Per-device bodies, chosen in modulation.cc (cpu/modulation.cc).
namespace impl {
template <DeviceKind D>
void modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, Tensor& out);
template <DeviceKind D>
void gated_residual_add(Tensor& x, const Tensor& gate, const Tensor& y);
}  // namespace impl

}  // namespace paradiff::kernels
