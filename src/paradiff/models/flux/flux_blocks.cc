#include "paradiff/models/flux/flux_blocks.h"

#include "paradiff/kernels/layer_norm.h"
#include "paradiff/kernels/modulation.h"
#include "paradiff/kernels/rope.h"

namespace paradiff::models::flux {

namespace {

using kernels::Activation;
using Join = ModuleLoader;

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
  project_qkv(text_,
              norm_modulate(txt, modulation_chunk(cemb, 0, c), modulation_chunk(cemb, 1, c), adt),
              0, *ctx.rotary, q, k, v);
  project_qkv(image_,
              norm_modulate(img, modulation_chunk(emb, 0, c), modulation_chunk(emb, 1, c), adt), st,
              *ctx.rotary, q, k, v);

  Tensor attn = Tensor::empty({s, heads_, head_dim_}, adt);
  const Shape joint{1, s, heads_, head_dim_};
  Tensor attn4 = attn.reshape(joint);
  ctx.attention->attend(q.reshape(joint), k.reshape(joint), v.reshape(joint), attn4, *ctx.forward);
  const Tensor attn2 = attn.reshape({s, c});
  // The attention's output projections in the activation dtype (bf16 where it is native, as in
  // diffusers), added to the fp32 residual in fp32.
  gated_add(img, modulation_chunk(emb, 2, c), to_out_.forward(attn2.slice(st, si), adt));
  gated_add(txt, modulation_chunk(cemb, 2, c), to_add_out_.forward(attn2.slice(0, st), adt));

  feed_forward(ff_in_, ff_out_, img, modulation_chunk(emb, 3, c), modulation_chunk(emb, 4, c),
               modulation_chunk(emb, 5, c), adt);
  feed_forward(ff_context_in_, ff_context_out_, txt, modulation_chunk(cemb, 3, c),
               modulation_chunk(cemb, 4, c), modulation_chunk(cemb, 5, c), adt);
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
  const std::string proj_out = Join::join(prefix, "proj_out");
  proj_out_attn_ = loader.linear_from(proj_out, copy_columns(w, 0, c), Tensor());
  proj_out_mlp_ = loader.linear_from(proj_out, copy_columns(w, c, mlp), b);
}

void FluxSingleTransformerBlock::forward(Tensor& h, const BlockContext& ctx) const {
  const int64_t s = h.dim(0), c = inner_;
  const DType adt = ctx.activation_dtype;
  const Tensor emb = norm_.forward(*ctx.silu_temb);  // shift, scale, gate
  const Tensor normed =
      norm_modulate(h, modulation_chunk(emb, 0, c), modulation_chunk(emb, 1, c), adt);
  const Tensor mlp = proj_mlp_.forward(normed, adt, Activation::GeluTanh);

  Tensor q = Tensor::empty({s, heads_, head_dim_}, adt);
  Tensor k = Tensor::empty({s, heads_, head_dim_}, adt);
  Tensor v = Tensor::empty({s, heads_, head_dim_}, adt);
  project_qkv(qkv_, normed, 0, *ctx.rotary, q, k, v);
  Tensor attn = Tensor::empty({s, heads_, head_dim_}, adt);
  const Shape joint{1, s, heads_, head_dim_};
  Tensor attn4 = attn.reshape(joint);
  ctx.attention->attend(q.reshape(joint), k.reshape(joint), v.reshape(joint), attn4, *ctx.forward);

  Tensor out = proj_out_attn_.forward(attn.reshape({s, c}));
  proj_out_mlp_.forward(mlp, out, Activation::None, /*accumulate=*/true);
  gated_add(h, modulation_chunk(emb, 2, c), out);
}

}  // namespace paradiff::models::flux
