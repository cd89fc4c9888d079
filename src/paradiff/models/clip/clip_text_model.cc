#include "paradiff/models/clip/clip_text_model.h"

#include <cmath>
#include <filesystem>

#include "paradiff/kernels/activations.h"
#include "paradiff/kernels/attention_bias.h"
#include "paradiff/kernels/embedding.h"
#include "paradiff/kernels/layer_norm.h"
#include "paradiff/kernels/pointwise.h"

namespace paradiff::models::clip {

namespace {

using kernels::Activation;

// A LayerNorm's weight and bias as layer_norm_modulate's (1, C) scale (weight - 1) and shift.
void bind_layer_norm(ModuleLoader& loader, const std::string& prefix, int64_t c, Tensor& scale,
                     Tensor& shift) {
  Tensor w = loader.parameter(ModuleLoader::join(prefix, "weight"), Shape{c});
  Tensor b = loader.parameter(ModuleLoader::join(prefix, "bias"), Shape{c});
  scale = Tensor::empty({1, c}, DType::F32);
  shift = b.clone().reshape({1, c});
  Tensor minus_one = Tensor::empty({1, c}, DType::F32);
  kernels::fill(minus_one, -1.0f);
  kernels::add(w.reshape({1, c}), minus_one, scale);  // w + (-1) is w - 1 exactly
}

// The fused GEMM post-op for the activations oneDNN has, else none (applied afterwards).
Activation fused(ClipActivation act) {
  if (act == ClipActivation::GeluTanh) return Activation::GeluTanh;
  if (act == ClipActivation::Silu) return Activation::Silu;
  return Activation::None;
}

void apply_unfused(ClipActivation act, const Tensor& x, Tensor& out) {
  switch (act) {
    case ClipActivation::QuickGelu:
      kernels::quick_gelu(x, out);
      break;
    case ClipActivation::Gelu:
      kernels::gelu_erf(x, out);
      break;
    case ClipActivation::Relu:
      kernels::relu(x, out);
      break;
    case ClipActivation::GeluTanh:
    case ClipActivation::Silu:
      out.copy_from(x);  // already applied inside the GEMM
      break;
  }
}

}  // namespace

CLIPTextModel::CLIPTextModel(const CLIPTextConfig& config, ModuleLoader& loader,
                             const std::string& prefix)
    : config_(config), compute_(loader.compute_dtype()) {
  config_.validate("CLIP text config");
  const int64_t c = config_.hidden_size, f = config_.intermediate_size;
  const std::string p = prefix;
  token_embedding_ = loader.tensor(p + "embeddings.token_embedding.weight",
                                   Shape{config_.vocab_size, c}, compute_);
  position_embedding_ = loader.parameter(p + "embeddings.position_embedding.weight",
                                         Shape{config_.max_position_embeddings, c});
  layers_.resize(static_cast<size_t>(config_.num_hidden_layers));
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    CLIPEncoderLayer& l = layers_[static_cast<size_t>(i)];
    const std::string lp = str_cat(p, "encoder.layers.", i, ".");
    bind_layer_norm(loader, lp + "layer_norm1", c, l.layer_norm1_scale, l.layer_norm1_shift);
    l.q_proj = loader.linear(lp + "self_attn.q_proj", c, c);
    l.k_proj = loader.linear(lp + "self_attn.k_proj", c, c);
    l.v_proj = loader.linear(lp + "self_attn.v_proj", c, c);
    l.out_proj = loader.linear(lp + "self_attn.out_proj", c, c);
    bind_layer_norm(loader, lp + "layer_norm2", c, l.layer_norm2_scale, l.layer_norm2_shift);
    l.fc1 = loader.linear(lp + "mlp.fc1", c, f);
    l.fc2 = loader.linear(lp + "mlp.fc2", f, c);
  }
  bind_layer_norm(loader, p + "final_layer_norm", c, final_scale_, final_shift_);
  loader.finish();
}

CLIPTextModel CLIPTextModel::from_pretrained(const std::string& folder, DType compute,
                                             const std::string& variant) {
  const auto config = CLIPTextConfig::load(model_config_path(folder, "text encoder folder"));
  const CheckpointWeights weights(Checkpoint::open_folder(folder, "model", variant));
  const std::string prefix =
      weights.contains("text_model.embeddings.token_embedding.weight") ? "text_model." : "";
  ModuleLoader loader(weights, compute);
  // Checkpoints from before transformers 4.31 also hold the position_ids buffer.
  const std::string position_ids = prefix + "embeddings.position_ids";
  if (weights.contains(position_ids))
    loader.tensor(position_ids, Shape{1, config.max_position_embeddings}, DType::I64);
  return CLIPTextModel(config, loader, prefix);
}

CLIPTextModel CLIPTextModel::with_random_weights(const CLIPTextConfig& config, DType compute,
                                                 uint64_t seed) {
  ModuleLoader loader(RandomInit{seed}, compute);
  return CLIPTextModel(config, loader);
}

CLIPTextModelOutput CLIPTextModel::forward(const Tensor& input_ids) const {
  PARADIFF_CHECK(input_ids.dtype() == DType::I64 && input_ids.ndim() == 2,
                 "CLIP input_ids must be i64 (B, S), got ", input_ids.describe());
  const int64_t batch = input_ids.dim(0), s = input_ids.dim(1);
  const int64_t c = config_.hidden_size, heads = config_.num_attention_heads;
  const int64_t d = config_.head_dim(), f = config_.intermediate_size;
  PARADIFF_CHECK(
      s >= 1 && s <= config_.max_position_embeddings, "CLIP input_ids has ", s,
      " tokens; the model takes 1 to max_position_embeddings = ", config_.max_position_embeddings);
  const int64_t* all_ids = input_ids.data<int64_t>();
  for (int64_t i = 0; i < input_ids.numel(); ++i)
    PARADIFF_CHECK(all_ids[i] >= 0 && all_ids[i] < config_.vocab_size, "CLIP input_ids[", i / s,
                   ", ", i % s, "] = ", all_ids[i], " is outside the vocabulary [0, ",
                   config_.vocab_size, ")");

  const DType act = compute_;  // GEMM and attention inputs
  const float eps = static_cast<float>(config_.layer_norm_eps);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const Activation fused_act = fused(config_.hidden_act);
  CLIPTextModelOutput out{Tensor::empty({batch, s, c}, DType::F32),
                          Tensor::empty({batch, c}, DType::F32)};
  Tensor x = Tensor::empty({s, c}, DType::F32);  // the residual stream of one prompt
  Tensor h = Tensor::empty({1, s, c}, act);
  Tensor attn = Tensor::empty({1, s, heads, d}, act);
  Tensor mlp = Tensor::empty({s, f}, act);
  Tensor mlp_f32 = fused_act == Activation::None ? Tensor::empty({s, f}, DType::F32) : Tensor();

  for (int64_t b = 0; b < batch; ++b) {
    const int64_t* ids = all_ids + b * s;
    // Embeddings: token row (in the compute dtype) + position row, in fp32.
    kernels::embedding(token_embedding_, input_ids.select(b), x);
    kernels::add(x, position_embedding_.slice(0, s), x);
    const Tensor x3 = x.reshape({1, s, c});
    const Tensor h2 = h.reshape({s, c});
    for (const CLIPEncoderLayer& l : layers_) {
      kernels::layer_norm_modulate(x3, l.layer_norm1_shift, l.layer_norm1_scale, eps, h);
      const Tensor q = l.q_proj.forward(h2, act).reshape({1, s, heads, d});
      const Tensor k = l.k_proj.forward(h2, act).reshape({1, s, heads, d});
      const Tensor v = l.v_proj.forward(h2, act).reshape({1, s, heads, d});
      kernels::attention_with_bias(q, k, v, Tensor(), /*causal=*/true, scale, attn);
      l.out_proj.forward(attn.reshape({s, c}), x, Activation::None, /*accumulate=*/true);
      kernels::layer_norm_modulate(x3, l.layer_norm2_shift, l.layer_norm2_scale, eps, h);
      if (fused_act != Activation::None) {
        l.fc1.forward(h2, mlp, fused_act);
      } else {
        l.fc1.forward(h2, mlp_f32);
        apply_unfused(config_.hidden_act, mlp_f32, mlp);
      }
      l.fc2.forward(mlp, x, Activation::None, /*accumulate=*/true);
    }
    Tensor last = out.last_hidden_state.slice(b, 1);
    kernels::layer_norm_modulate(x3, final_shift_, final_scale_, eps, last);

    // transformers' pooled position: argmax of the ids (legacy eos_token_id 2), else the first
    // EOS; argmax returns the first maximum, and no EOS gives position 0.
    int64_t pos = 0;
    for (int64_t t = 0; t < s; ++t) {
      if (config_.legacy_pooling() ? ids[t] > ids[pos] : ids[t] == config_.eos_token_id) {
        pos = t;
        if (!config_.legacy_pooling()) break;
      }
    }
    out.pooler_output.select(b).copy_from(last.select(0).select(pos));
  }
  return out;
}

}  // namespace paradiff::models::clip
