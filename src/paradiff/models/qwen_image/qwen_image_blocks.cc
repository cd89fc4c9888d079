#include "paradiff/models/qwen_image/qwen_image_blocks.h"

#include <cmath>

#include "paradiff/kernels/layer_norm.h"
#include "paradiff/kernels/modulation.h"
#include "paradiff/kernels/rope.h"

namespace paradiff::models::qwen_image {

namespace {

using kernels::Activation;
using Join = ModuleLoader;

StreamWeights load_stream(ModuleLoader& loader, const std::string& prefix, bool image,
                          const QwenImageTransformerConfig& config) {
  const int64_t c = config.inner_dim(), mlp = config.mlp_hidden_dim();
  const int64_t d = config.attention_head_dim;
  const std::string attn = Join::join(prefix, "attn");
  const std::string stream = image ? "img" : "txt";
  StreamWeights w;
  w.modulation = loader.linear(Join::join(prefix, stream + "_mod.1"), c, 6 * c);
  w.qkv.to_q = loader.linear(Join::join(attn, image ? "to_q" : "add_q_proj"), c, c);
  w.qkv.to_k = loader.linear(Join::join(attn, image ? "to_k" : "add_k_proj"), c, c);
  w.qkv.to_v = loader.linear(Join::join(attn, image ? "to_v" : "add_v_proj"), c, c);
  w.qkv.norm_q =
      loader.parameter(Join::join(attn, image ? "norm_q.weight" : "norm_added_q.weight"), Shape{d});
  w.qkv.norm_k =
      loader.parameter(Join::join(attn, image ? "norm_k.weight" : "norm_added_k.weight"), Shape{d});
  w.to_out = loader.linear(Join::join(attn, image ? "to_out.0" : "to_add_out"), c, c);
  w.mlp_in = loader.linear(Join::join(prefix, stream + "_mlp.net.0.proj"), c, mlp);
  w.mlp_out = loader.linear(Join::join(prefix, stream + "_mlp.net.2"), mlp, c);
  return w;
}

// x += gate2 · mlp(LN(x)·(1 + scale2) + shift2), the MLP GELU(tanh) between two Linears.
void feed_forward(const StreamWeights& w, const Tensor& mod, Tensor& x, DType dtype) {
  const int64_t c = x.dim(1);
  const Tensor normed =
      norm_modulate(x, modulation_chunk(mod, 3, c), modulation_chunk(mod, 4, c), dtype);
  const Tensor hidden = w.mlp_in.forward(normed, dtype, Activation::GeluTanh);
  gated_add(x, modulation_chunk(mod, 5, c), w.mlp_out.forward(hidden));
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
  project_qkv(text_.qkv,
              norm_modulate(txt, modulation_chunk(tm, 0, c), modulation_chunk(tm, 1, c), adt), 0,
              *ctx.rotary, q, k, v);
  project_qkv(image_.qkv,
              norm_modulate(img, modulation_chunk(im, 0, c), modulation_chunk(im, 1, c), adt), st,
              *ctx.rotary, q, k, v);

  // Joint attention, text first as diffusers concatenates it (the order of keys does not change
  // the result; it fixes which output rows are which stream's).
  Tensor attn = Tensor::empty({s, heads_, head_dim_}, adt);
  const Shape joint{1, s, heads_, head_dim_};
  Tensor attn4 = attn.reshape(joint);
  ctx.attention->attend(q.reshape(joint), k.reshape(joint), v.reshape(joint), attn4, *ctx.forward);
  const Tensor attn2 = attn.reshape({s, c});
  // The attention's output projections in the activation dtype (bf16 where it is native, as in
  // diffusers), added to the fp32 residual in fp32.
  gated_add(img, modulation_chunk(im, 2, c), image_.to_out.forward(attn2.slice(st, si), adt));
  gated_add(txt, modulation_chunk(tm, 2, c), text_.to_out.forward(attn2.slice(0, st), adt));

  feed_forward(image_, im, img, adt);
  feed_forward(text_, tm, txt, adt);
}

}  // namespace paradiff::models::qwen_image
