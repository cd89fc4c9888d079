// The Wan / Qwen-Image VAE's norm (diffusers' QwenImageRMS_norm): each position's channel
// vector divided by its L2 norm (torch.nn.functional.normalize, the norm clamped below at 1e-12,
// so a zero vector stays zero), times a scale (sqrt(C) there) and a per-channel gamma,
// optionally followed by SiLU, which every such norm in the VAE but the attention's feeds.
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// x: (..., C) F32, channels last; gamma: [C] F32. out: F32 of x's shape; it may be x.
// out = x / max(||x||_2, 1e-12) · scale · gamma, then out · sigmoid(out) when `silu`. The sum
// of squares is accumulated in double.
void l2_norm(const Tensor& x, const Tensor& gamma, float scale, Tensor& out, bool silu = false);

// Per-device body, chosen in l2_norm.cc (cpu/l2_norm.cc).
namespace impl {
template <DeviceKind D>
void l2_norm(const Tensor& x, const Tensor& gamma, float scale, Tensor& out, bool silu);
}  // namespace impl

}  // namespace paradiff::kernels
