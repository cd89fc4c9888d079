#include "paradiff/models/joint_attention.h"

#include "paradiff/kernels/layer_norm.h"
#include "paradiff/kernels/modulation.h"
#include "paradiff/kernels/rope.h"

namespace paradiff::models {

Tensor modulation_chunk(const Tensor& emb, int64_t i, int64_t c) {
  return emb.reshape({-1, c}).slice(i, 1);
}

void project_qkv(const QkNormProjection& p, const Tensor& x, int64_t row0,
                 const RotaryTables& rotary, Tensor& q, Tensor& k, Tensor& v) {
  const int64_t rows = x.dim(0), heads = q.dim(1), head_dim = q.dim(2);
  const RotaryTables rot = rotary.rows(row0, rows);
  // In x's dtype: bf16 where bf16 is native (as diffusers' bf16 Linear hands q and k to their
  // RMSNorm), which oneDNN writes faster than f32 and the norm reads in half the bytes.
  Tensor projected = Tensor::empty({rows, heads * head_dim}, x.dtype());
  const Shape per_head{1, rows, heads, head_dim};
  p.to_q.forward(x, projected);
  Tensor q_rows = q.slice(row0, rows).reshape(per_head);
  kernels::rms_norm_rope(projected.reshape(per_head), p.norm_q, kJointNormEps, rot.cos, rot.sin,
                         q_rows);
  p.to_k.forward(x, projected);
  Tensor k_rows = k.slice(row0, rows).reshape(per_head);
  kernels::rms_norm_rope(projected.reshape(per_head), p.norm_k, kJointNormEps, rot.cos, rot.sin,
                         k_rows);
  Tensor v_rows = v.slice(row0, rows).reshape({rows, heads * head_dim});
  p.to_v.forward(x, v_rows);
}

Tensor norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale,
                     DType activation_dtype) {
  Tensor out = Tensor::empty(x.shape(), activation_dtype);
  const Shape batched{1, x.dim(0), x.dim(1)};
  Tensor out3 = out.reshape(batched);
  kernels::layer_norm_modulate(x.reshape(batched), shift, scale, kJointNormEps, out3);
  return out;
}

void gated_add(Tensor& x, const Tensor& gate, const Tensor& y) {
  Tensor x3 = x.reshape({1, x.dim(0), x.dim(1)});
  kernels::gated_residual_add(x3, gate, y.reshape({1, y.dim(0), y.dim(1)}));
}

}  // namespace paradiff::models
