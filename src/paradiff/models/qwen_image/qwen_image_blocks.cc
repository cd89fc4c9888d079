#include "paradiff/models/qwen_image/qwen_image_blocks.h"

#include <cmath>

#include "paradiff/kernels/layer_norm.h"
#include "paradiff/kernels/modulation.h"
#include "paradiff/kernels/rope.h"

namespace paradiff::models::qwen_image {

namespace {

using kernels::Activation;
using Join = ModuleLoader;

constexpr float kNormEps = 1e-6f;

// Row `i` of a modulation (1, 6C) viewed as (6, C), as (1, C).
Tensor chunk(const Tensor& emb, int64_t i, int64_t c) {
  return emb.reshape({-1, c}).slice(i, 1);
}

StreamWeights load_stream(ModuleLoader& loader, const std::string& prefix, bool image,
                          const QwenImageTransformerConfig& config) {
  const int64_t c = config.inner_dim(), mlp = config.mlp_hidden_dim();
  const int64_t d = config.attention_head_dim;
  const std::string attn = Join::join(prefix, "attn");
  const std::string stream = image ? "img" : "txt";
  StreamWeights w;
  w.modulation = loader.linear(Join::join(prefix, stream + "_mod.1"), c, 6 * c);
  w.to_q = loader.linear(Join::join(attn, image ? "to_q" : "add_q_proj"), c, c);
  w.to_k = loader.linear(Join::join(attn, image ? "to_k" : "add_k_proj"), c, c);
  w.to_v = loader.linear(Join::join(attn, image ? "to_v" : "add_v_proj"), c, c);
  w.norm_q =
      loader.parameter(Join::join(attn, image ? "norm_q.weight" : "norm_added_q.weight"), Shape{d});
  w.norm_k =
      loader.parameter(Join::join(attn, image ? "norm_k.weight" : "norm_added_k.weight"), Shape{d});
  w.to_out = loader.linear(Join::join(attn, image ? "to_out.0" : "to_add_out"), c, c);
  w.mlp_in = loader.linear(Join::join(prefix, stream + "_mlp.net.0.proj"), c, mlp);
  w.mlp_out = loader.linear(Join::join(prefix, stream + "_mlp.net.2"), mlp, c);
  return w;
}

// Projects x (rows, C) into rows [row0, row0 + rows) of the joint q, k, v (S, H, D): q and k
// RMS-normalised per head and rotated with the matching table rows, v as projected.
void project_qkv(const StreamWeights& w, const Tensor& x, int64_t row0, const BlockContext& ctx,
                 Tensor& q, Tensor& k, Tensor& v) {
  const int64_t rows = x.dim(0), heads = q.dim(1), head_dim = q.dim(2);
  const RotaryTables rot = ctx.rotary->rows(row0, rows);
  Tensor projected = Tensor::empty({rows, heads * head_dim}, DType::F32);
  const Shape per_head{1, rows, heads, head_dim};
  w.to_q.forward(x, projected);
  Tensor q_rows = q.slice(row0, rows).reshape(per_head);
  kernels::rms_norm_rope(projected.reshape(per_head), w.norm_q, kNormEps, rot.cos, rot.sin, q_rows);
  w.to_k.forward(x, projected);
  Tensor k_rows = k.slice(row0, rows).reshape(per_head);
  kernels::rms_norm_rope(projected.reshape(per_head), w.norm_k, kNormEps, rot.cos, rot.sin, k_rows);
  Tensor v_rows = v.slice(row0, rows).reshape({rows, heads * head_dim});
  w.to_v.forward(x, v_rows);
}

// LayerNorm(x) (no affine, eps 1e-6)·(1 + scale) + shift for x (rows, C).
Tensor norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, DType dtype) {
  Tensor out = Tensor::empty(x.shape(), dtype);
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

// x += gate2 · mlp(LN(x)·(1 + scale2) + shift2), the MLP GELU(tanh) between two Linears.
void feed_forward(const StreamWeights& w, const Tensor& mod, Tensor& x, DType dtype) {
  const int64_t c = x.dim(1);
  const Tensor normed = norm_modulate(x, chunk(mod, 3, c), chunk(mod, 4, c), dtype);
  const Tensor hidden = w.mlp_in.forward(normed, dtype, Activation::GeluTanh);
  gated_add(x, chunk(mod, 5, c), w.mlp_out.forward(hidden));
}

}  // namespace

QwenTimestepProjEmbeddings::QwenTimestepProjEmbeddings(ModuleLoader& loader,
                                                       const std::string& prefix, int64_t inner)
    : linear_1_(loader.linear(Join::join(prefix, "timestep_embedder.linear_1"), 256, inner)),
      linear_2_(loader.linear(Join::join(prefix, "timestep_embedder.linear_2"), inner, inner)) {}

Tensor QwenTimestepProjEmbeddings::forward(const Tensor& timestep) const {
  PARADIFF_CHECK(timestep.ndim() == 1, "timestep must be (B), got ", timestep.describe());
  const int64_t b = timestep.dim(0), half = 128;
  // get_timestep_embedding(t, 256, flip_sin_to_cos=True, shift 0, scale=1000): unlike FLUX's
  // Timesteps, the 1000 multiplies t·f_k after the product, each step rounded to f32 as torch
  // does. A (B, 256) host computation, built once per forward.
  Tensor proj = Tensor::empty({b, 2 * half}, DType::F32);
  const float neg_log = static_cast<float>(-std::log(10000.0));
  for (int64_t i = 0; i < b; ++i) {
    const float t = timestep.data<float>()[i];
    float* row = proj.data<float>() + i * 2 * half;
    for (int64_t k = 0; k < half; ++k) {
      const float exponent = (static_cast<float>(k) * neg_log) / static_cast<float>(half);
      const float product = t * std::exp(exponent);
      const float arg = 1000.0f * product;
      row[k] = std::cos(arg);
      row[half + k] = std::sin(arg);
    }
  }
  return linear_2_.forward(linear_1_.forward(proj, DType::F32, Activation::Silu));
}

QwenImageTransformerBlock::QwenImageTransformerBlock(ModuleLoader& loader,
                                                     const std::string& prefix,
                                                     const QwenImageTransformerConfig& config)
    : heads_(config.num_attention_heads),
      head_dim_(config.attention_head_dim),
      inner_(config.inner_dim()),
      image_(load_stream(loader, prefix, true, config)),
      text_(load_stream(loader, prefix, false, config)) {}

void QwenImageTransformerBlock::forward(Tensor& h, const BlockContext& ctx) const {
  const int64_t s = h.dim(0), st = ctx.text_tokens, si = s - st, c = inner_;
  const DType adt = ctx.activation_dtype;
  Tensor txt = h.slice(0, st), img = h.slice(st, si);
  // [shift, scale, gate] for the attention, then for the MLP, per stream.
  const Tensor im = image_.modulation.forward(*ctx.silu_temb);
  const Tensor tm = text_.modulation.forward(*ctx.silu_temb);

  Tensor q = Tensor::empty({s, heads_, head_dim_}, adt);
  Tensor k = Tensor::empty({s, heads_, head_dim_}, adt);
  Tensor v = Tensor::empty({s, heads_, head_dim_}, adt);
  project_qkv(text_, norm_modulate(txt, chunk(tm, 0, c), chunk(tm, 1, c), adt), 0, ctx, q, k, v);
  project_qkv(image_, norm_modulate(img, chunk(im, 0, c), chunk(im, 1, c), adt), st, ctx, q, k, v);

  // Joint attention, text first as diffusers concatenates it (the order of keys does not change
  // the result; it fixes which output rows are which stream's).
  Tensor attn = Tensor::empty({s, heads_, head_dim_}, adt);
  const Shape joint{1, s, heads_, head_dim_};
  Tensor attn4 = attn.reshape(joint);
  ctx.attention->attend(q.reshape(joint), k.reshape(joint), v.reshape(joint), attn4, *ctx.forward);
  const Tensor attn2 = attn.reshape({s, c});
  gated_add(img, chunk(im, 2, c), image_.to_out.forward(attn2.slice(st, si)));
  gated_add(txt, chunk(tm, 2, c), text_.to_out.forward(attn2.slice(0, st)));

  feed_forward(image_, im, img, adt);
  feed_forward(text_, tm, txt, adt);
}

}  // namespace paradiff::models::qwen_image
