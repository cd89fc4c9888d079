// The building blocks that MMDiT transformers (FluxTransformer2DModel, QwenImageTransformer2DModel)
// share over a joint sequence h (S, C) of text rows then image rows: rotary tables as row views,
// q/k/v projections with per-head RMSNorm and RoPE written into the joint q, k, v, the adaLN
// modulation LN(x)·(1 + scale) + shift, and gated residual adds.
#pragma once

#include <cstdint>

#include "paradiff/core/tensor.h"
#include "paradiff/kernels/linear.h"

namespace paradiff::models {

struct RotaryTables {
  Tensor cos;  // (S, head_dim) F32, each value repeated for the pair (2k, 2k+1)
  Tensor sin;
  // Rows [start, start + length): the tables of a sub-sequence, as views.
  RotaryTables rows(int64_t start, int64_t length) const {
    return {cos.slice(start, length), sin.slice(start, length)};
  }
};

// One stream's q/k/v projections and the per-head RMSNorm weights of q and k.
struct QkNormProjection {
  kernels::Linear to_q, to_k, to_v;
  Tensor norm_q, norm_k;  // (head_dim) F32
};

// Both models' norms use eps 1e-6.
inline constexpr float kJointNormEps = 1e-6f;

// Row `i` of an adaLN embedding (1, n·C) viewed as (n, C): a shift, scale or gate, as (1, C).
Tensor modulation_chunk(const Tensor& emb, int64_t i, int64_t c);

// Projects x (rows, C) into rows [row0, row0 + rows) of the joint q, k, v (S, H, D): q and k
// RMS-normalised per head and rotated with the matching rows of `rotary`, v as projected.
void project_qkv(const QkNormProjection& p, const Tensor& x, int64_t row0,
                 const RotaryTables& rotary, Tensor& q, Tensor& k, Tensor& v);

// LN(x) (no affine, eps 1e-6)·(1 + scale) + shift for x (rows, C), in `activation_dtype`.
Tensor norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale,
                     DType activation_dtype);

// x += gate · y for x, y (rows, C).
void gated_add(Tensor& x, const Tensor& gate, const Tensor& y);

}  // namespace paradiff::models
