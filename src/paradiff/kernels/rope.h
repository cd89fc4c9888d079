// Rotary position embedding on interleaved pairs (2k, 2k+1), from cos/sin tables, as FLUX's
// FluxPosEmbed + apply_rotary_emb define it: out = x·cos + rot(x)·sin with
// rot(x)_{2k} = -x_{2k+1}, rot(x)_{2k+1} = x_{2k}; computed in fp32.
#pragma once

#include <cstdint>
#include <vector>

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// x: (B, S, H, D) F32 or BF16; cos, sin: (S, D) F32 (values repeated per pair, cos[2k] ==
// cos[2k+1]); out: (B, S, H, D) F32 or BF16. out may be x when both are F32.
void apply_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, Tensor& out);

// RMSNorm over D (weight (D) F32, eps) followed by RoPE, in one pass: FLUX's norm_q/norm_k then
// rotary embedding on queries and keys. Same shapes as apply_rope.
void rms_norm_rope(const Tensor& x, const Tensor& weight, float eps, const Tensor& cos,
                   const Tensor& sin, Tensor& out);

// The cos/sin tables from positions, one frequency band per position axis (FLUX's FluxPosEmbed,
// diffusers' get_1d_rotary_pos_embed): for axis a of width d_a, freq_k = 1 / theta^(2k / d_a) and
// angle = position · freq_k in float64, rounded to f32 and repeated for the pair (2k, 2k+1); the
// axes' bands are concatenated. positions: (S, A) F32 with A == axes_dims.size(); every d_a even;
// cos, sin: preallocated (S, sum d_a) F32.
void rope_tables(const Tensor& positions, const std::vector<int64_t>& axes_dims, double theta,
                 Tensor& cos, Tensor& sin);

// Per-device bodies, chosen in rope.cc (cpu/rope.cc).
namespace impl {
template <DeviceKind D>
void rope_tables(const Tensor& positions, const std::vector<int64_t>& axes_dims, double theta,
                 Tensor& cos, Tensor& sin);
template <DeviceKind D>
void apply_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, Tensor& out);
template <DeviceKind D>
void rms_norm_rope(const Tensor& x, const Tensor& weight, float eps, const Tensor& cos,
                   const Tensor& sin, Tensor& out);
}  // namespace impl

}  // namespace paradiff::kernels
