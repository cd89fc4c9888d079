#include "paradiff/models/flux/flux_blocks.h"

#include "paradiff/kernels/layer_norm.h"
#include "paradiff/kernels/modulation.h"
#include "paradiff/kernels/rope.h"

namespace paradiff::models::flux {

namespace {

using kernels::Activation;
using Join = ModuleLoader;

constexpr float kNormEps = 1e-6f;

// Row `i` of an adaLN embedding (1, n·C) viewed as (n, C): shift, scale or gate, as (1, C).
Tensor chunk(const Tensor& emb, int64_t i, int64_t c) {
  return emb.reshape({-1, c}).slice(i, 1);
}

QkNormProjection load_qkv(ModuleLoader& loader, const std::string& attn, const char* q,
                          const char* k, const char* v, const char* norm_q, const char* norm_k,
                          int64_t inner, int64_t head_dim) {
  QkNormProjection p;
  p.to_q = loader.linear(Join::join(attn, q), inner, inner);
  p.to_k = loader.linear(Join::join(attn, k), inner, inner);
  p.to_v = loader.linear(Join::join(attn, v), inner, inner);
  p.norm_q = loader.parameter(Join::join(Join::join(attn, norm_q), "weight"), Shape{head_dim});
  p.norm_k = loader.parameter(Join::join(Join::join(attn, norm_k), "weight"), Shape{head_dim});
  return p;
}

// Projects x (rows, C) into rows [row0, row0 + rows) of the joint q, k, v (S, H, D): q and k
// normalised per head and rotated with the matching rows of the tables, v as projected.
void project_qkv(const QkNormProjection& p, const Tensor& x, int64_t row0, const BlockContext& ctx,
                 Tensor& q, Tensor& k, Tensor& v) {
  const int64_t rows = x.dim(0), heads = q.dim(1), head_dim = q.dim(2);
  const RotaryTables rot = ctx.rotary->rows(row0, rows);
  Tensor projected = Tensor::empty({rows, heads * head_dim}, DType::F32);
  const Shape per_head{1, rows, heads, head_dim};
  p.to_q.forward(x, projected);
  Tensor q_rows = q.slice(row0, rows).reshape(per_head);
  kernels::rms_norm_rope(projected.reshape(per_head), p.norm_q, kNormEps, rot.cos, rot.sin, q_rows);
  p.to_k.forward(x, projected);
  Tensor k_rows = k.slice(row0, rows).reshape(per_head);
  kernels::rms_norm_rope(projected.reshape(per_head), p.norm_k, kNormEps, rot.cos, rot.sin, k_rows);
  Tensor v_rows = v.slice(row0, rows).reshape({rows, heads * head_dim});
  p.to_v.forward(x, v_rows);
}

// LN(x)·(1 + scale) + shift for x (rows, C), in the activation dtype.
Tensor norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale,
                     DType activation_dtype) {
  Tensor out = Tensor::empty(x.shape(), activation_dtype);
  const Shape batched{1, x.dim(0), x.dim(1)};
  Tensor out3 = out.reshape(batched);
  kernels::layer_norm_modulate(x.reshape(batched), shift, scale, kNormEps, out3);
  return out;
}

// x += gate · y for x, y (rows, C).
void gated_add(Tensor& x, const Tensor& gate, const Tensor& y) {
  Tensor x3 = x.reshape({1, x.dim(0), x.dim(1)});
  kernels::gated_residual_add(x3, gate, y.reshape({1, y.dim(0), y.dim(1)}));
}

// Feed-forward: Linear(C, 4C) with GELU(tanh) fused, Linear(4C, C); gated into x.
void feed_forward(const kernels::Linear& in, const kernels::Linear& out, Tensor& x,
                  const Tensor& shift, const Tensor& scale, const Tensor& gate,
                  DType activation_dtype) {
  const Tensor normed = norm_modulate(x, shift, scale, activation_dtype);
  const Tensor hidden = in.forward(normed, activation_dtype, Activation::GeluTanh);
  gated_add(x, gate, out.forward(hidden));
}

}  // namespace

FluxTransformerBlock::FluxTransformerBlock(ModuleLoader& loader, const std::string& prefix,
                                           const FluxTransformerConfig& config)
    : heads_(config.num_attention_heads),
      head_dim_(config.attention_head_dim),
      inner_(config.inner_dim()) {
  const std::string attn = Join::join(prefix, "attn");
  const int64_t c = inner_, mlp = config.mlp_hidden_dim();
  norm1_ = loader.linear(Join::join(prefix, "norm1.linear"), c, 6 * c);
  norm1_context_ = loader.linear(Join::join(prefix, "norm1_context.linear"), c, 6 * c);
  image_ = load_qkv(loader, attn, "to_q", "to_k", "to_v", "norm_q", "norm_k", c, head_dim_);
  text_ = load_qkv(loader, attn, "add_q_proj", "add_k_proj", "add_v_proj", "norm_added_q",
                   "norm_added_k", c, head_dim_);
  to_out_ = loader.linear(Join::join(attn, "to_out.0"), c, c);
  to_add_out_ = loader.linear(Join::join(attn, "to_add_out"), c, c);
  ff_in_ = loader.linear(Join::join(prefix, "ff.net.0.proj"), c, mlp);
  ff_out_ = loader.linear(Join::join(prefix, "ff.net.2"), mlp, c);
  ff_context_in_ = loader.linear(Join::join(prefix, "ff_context.net.0.proj"), c, mlp);
  ff_context_out_ = loader.linear(Join::join(prefix, "ff_context.net.2"), mlp, c);
}

void FluxTransformerBlock::forward(Tensor& h, const BlockContext& ctx) const {
  const int64_t s = h.dim(0), st = ctx.text_tokens, si = s - st, c = inner_;
  const DType adt = ctx.activation_dtype;
  Tensor txt = h.slice(0, st), img = h.slice(st, si);
  // shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp
  const Tensor emb = norm1_.forward(*ctx.silu_temb);
  const Tensor cemb = norm1_context_.forward(*ctx.silu_temb);

  Tensor q = Tensor::empty({s, heads_, head_dim_}, adt);
  Tensor k = Tensor::empty({s, heads_, head_dim_}, adt);
  Tensor v = Tensor::empty({s, heads_, head_dim_}, adt);
  project_qkv(text_, norm_modulate(txt, chunk(cemb, 0, c), chunk(cemb, 1, c), adt), 0, ctx, q, k,
              v);
  project_qkv(image_, norm_modulate(img, chunk(emb, 0, c), chunk(emb, 1, c), adt), st, ctx, q, k,
              v);

  Tensor attn = Tensor::empty({s, heads_, head_dim_}, adt);
  const Shape joint{1, s, heads_, head_dim_};
  Tensor attn4 = attn.reshape(joint);
  ctx.attention->attend(q.reshape(joint), k.reshape(joint), v.reshape(joint), attn4, *ctx.forward);
  const Tensor attn2 = attn.reshape({s, c});
  gated_add(img, chunk(emb, 2, c), to_out_.forward(attn2.slice(st, si)));
  gated_add(txt, chunk(cemb, 2, c), to_add_out_.forward(attn2.slice(0, st)));

  feed_forward(ff_in_, ff_out_, img, chunk(emb, 3, c), chunk(emb, 4, c), chunk(emb, 5, c), adt);
  feed_forward(ff_context_in_, ff_context_out_, txt, chunk(cemb, 3, c), chunk(cemb, 4, c),
               chunk(cemb, 5, c), adt);
}

FluxSingleTransformerBlock::FluxSingleTransformerBlock(ModuleLoader& loader,
                                                       const std::string& prefix,
                                                       const FluxTransformerConfig& config)
    : heads_(config.num_attention_heads),
      head_dim_(config.attention_head_dim),
      inner_(config.inner_dim()) {
  const int64_t c = inner_, mlp = config.mlp_hidden_dim();
  norm_ = loader.linear(Join::join(prefix, "norm.linear"), c, 3 * c);
  qkv_ = load_qkv(loader, Join::join(prefix, "attn"), "to_q", "to_k", "to_v", "norm_q", "norm_k", c,
                  head_dim_);
  proj_mlp_ = loader.linear(Join::join(prefix, "proj_mlp"), c, mlp);
  const DType cdt = loader.compute_dtype();
  const Tensor w = loader.tensor(Join::join(prefix, "proj_out.weight"), Shape{c, c + mlp}, cdt);
  const Tensor b = loader.parameter(Join::join(prefix, "proj_out.bias"), Shape{c});
  proj_out_attn_ = kernels::Linear(copy_columns(w, 0, c), Tensor(), cdt);
  proj_out_mlp_ = kernels::Linear(copy_columns(w, c, mlp), b, cdt);
}

void FluxSingleTransformerBlock::forward(Tensor& h, const BlockContext& ctx) const {
  const int64_t s = h.dim(0), c = inner_;
  const DType adt = ctx.activation_dtype;
  const Tensor emb = norm_.forward(*ctx.silu_temb);  // shift, scale, gate
  const Tensor normed = norm_modulate(h, chunk(emb, 0, c), chunk(emb, 1, c), adt);
  const Tensor mlp = proj_mlp_.forward(normed, adt, Activation::GeluTanh);

  Tensor q = Tensor::empty({s, heads_, head_dim_}, adt);
  Tensor k = Tensor::empty({s, heads_, head_dim_}, adt);
  Tensor v = Tensor::empty({s, heads_, head_dim_}, adt);
  project_qkv(qkv_, normed, 0, ctx, q, k, v);
  Tensor attn = Tensor::empty({s, heads_, head_dim_}, adt);
  const Shape joint{1, s, heads_, head_dim_};
  Tensor attn4 = attn.reshape(joint);
  ctx.attention->attend(q.reshape(joint), k.reshape(joint), v.reshape(joint), attn4, *ctx.forward);

  Tensor out = proj_out_attn_.forward(attn.reshape({s, c}));
  proj_out_mlp_.forward(mlp, out, Activation::None, /*accumulate=*/true);
  gated_add(h, chunk(emb, 2, c), out);
}

}  // namespace paradiff::models::flux
