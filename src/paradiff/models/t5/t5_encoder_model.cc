#include "paradiff/models/t5/t5_encoder_model.h"

#include <filesystem>
#include <functional>

#include "paradiff/kernels/attention_bias.h"
#include "paradiff/kernels/channels_last.h"
#include "paradiff/kernels/embedding.h"
#include "paradiff/kernels/pointwise.h"
#include "paradiff/kernels/rms_norm.h"

namespace paradiff::models::t5 {

namespace {

using kernels::Activation;

Activation fused(T5Activation act) {
  if (act == T5Activation::GeluTanh) return Activation::GeluTanh;
  if (act == T5Activation::Silu) return Activation::Silu;
  return Activation::None;
}

// The activations oneDNN cannot fuse, in place on an F32 tensor.
void apply_unfused(T5Activation act, Tensor& x) {
  if (act == T5Activation::Relu) kernels::relu(x, x);
  if (act == T5Activation::Gelu) kernels::gelu_erf(x, x);
}

}  // namespace

T5EncoderModel::T5EncoderModel(const T5Config& config, ModuleLoader& loader,
                               const std::string& embedding)
    : config_(config), compute_(loader.compute_dtype()) {
  config_.validate("T5 config");
  const int64_t dm = config_.d_model, inner = config_.inner_dim(), ff = config_.d_ff;
  shared_ = loader.tensor(embedding, Shape{config_.vocab_size, dm}, compute_);
  blocks_.resize(static_cast<size_t>(config_.num_layers));
  for (int64_t i = 0; i < config_.num_layers; ++i) {
    T5Block& b = blocks_[static_cast<size_t>(i)];
    const std::string attn = str_cat("encoder.block.", i, ".layer.0.");
    const std::string mlp = str_cat("encoder.block.", i, ".layer.1.");
    b.attention_norm = loader.parameter(attn + "layer_norm.weight", Shape{dm});
    b.q = loader.linear(attn + "SelfAttention.q", dm, inner, false);
    b.k = loader.linear(attn + "SelfAttention.k", dm, inner, false);
    b.v = loader.linear(attn + "SelfAttention.v", dm, inner, false);
    b.o = loader.linear(attn + "SelfAttention.o", inner, dm, false);
    if (i == 0)
      relative_attention_bias_ =
          loader.parameter(attn + "SelfAttention.relative_attention_bias.weight",
                           Shape{config_.relative_attention_num_buckets, config_.num_heads});
    b.ff_norm = loader.parameter(mlp + "layer_norm.weight", Shape{dm});
    if (config_.gated) {
      b.wi_0 = loader.linear(mlp + "DenseReluDense.wi_0", dm, ff, false);
      b.wi_1 = loader.linear(mlp + "DenseReluDense.wi_1", dm, ff, false);
    } else {
      b.wi = loader.linear(mlp + "DenseReluDense.wi", dm, ff, false);
    }
    b.wo = loader.linear(mlp + "DenseReluDense.wo", ff, dm, false);
  }
  final_layer_norm_ = loader.parameter("encoder.final_layer_norm.weight", Shape{dm});
  loader.finish();
}

T5EncoderModel T5EncoderModel::from_pretrained(const std::string& folder, DType compute,
                                               const std::string& variant) {
  const auto config = T5Config::load(model_config_path(folder, "text encoder folder"));
  const CheckpointWeights checkpoint(Checkpoint::open_folder(folder, "model", variant));
  const std::string shared = "shared.weight", embed = "encoder.embed_tokens.weight";
  const bool has_shared = checkpoint.contains(shared), has_embed = checkpoint.contains(embed);
  if (has_shared && has_embed)
    PARADIFF_CHECK(checkpoint.shape(shared) == checkpoint.shape(embed), checkpoint.describe(),
                   ": '", shared, "' and its tied twin '", embed, "' differ in shape");
  const IgnoringWeights weights(checkpoint, [&](const std::string& name) {
    return name.rfind("decoder.", 0) == 0 || name == "lm_head.weight" ||
           (has_shared && name == embed);
  });
  ModuleLoader loader(weights, compute);
  return T5EncoderModel(config, loader, has_shared || !has_embed ? shared : embed);
}

T5EncoderModel T5EncoderModel::with_random_weights(const T5Config& config, DType compute,
                                                   uint64_t seed) {
  ModuleLoader loader(RandomInit{seed}, compute);
  return T5EncoderModel(config, loader);
}

Tensor T5EncoderModel::position_bias(int64_t seq_len) const {
  const int64_t heads = config_.num_heads;
  // One bucket per relative position j - i in [-(S-1), S-1].
  std::vector<int64_t> bucket(static_cast<size_t>(2 * seq_len - 1));
  for (int64_t r = -(seq_len - 1); r < seq_len; ++r)
    bucket[static_cast<size_t>(r + seq_len - 1)] = relative_position_bucket(
        r, config_.relative_attention_num_buckets, config_.relative_attention_max_distance);
  // The bucket of every (i, j), then the table's rows (one value per head) for them: (S, S, H),
  // transposed to the (H, S, S) that attention_with_bias takes.
  Tensor ids = Tensor::empty({seq_len * seq_len}, DType::I64);
  int64_t* id = ids.data<int64_t>();
  for (int64_t i = 0; i < seq_len; ++i)
    for (int64_t j = 0; j < seq_len; ++j)
      id[i * seq_len + j] = bucket[static_cast<size_t>(j - i + seq_len - 1)];
  Tensor rows = Tensor::empty({seq_len * seq_len, heads}, DType::F32);
  kernels::embedding(relative_attention_bias_, ids, rows);
  return kernels::nhwc_to_nchw(rows.reshape({1, seq_len, seq_len, heads}))
      .reshape({heads, seq_len, seq_len});
}

Tensor T5EncoderModel::forward(const Tensor& input_ids) const {
  PARADIFF_CHECK(input_ids.dtype() == DType::I64 && input_ids.ndim() == 2,
                 "T5 input_ids must be i64 (B, S), got ", input_ids.describe());
  const int64_t batch = input_ids.dim(0), s = input_ids.dim(1);
  PARADIFF_CHECK(s >= 1, "T5 input_ids has no tokens");
  const int64_t dm = config_.d_model, inner = config_.inner_dim(), ff = config_.d_ff;
  const int64_t heads = config_.num_heads, dkv = config_.d_kv;
  const int64_t* all_ids = input_ids.data<int64_t>();
  for (int64_t i = 0; i < input_ids.numel(); ++i)
    PARADIFF_CHECK(all_ids[i] >= 0 && all_ids[i] < config_.vocab_size, "T5 input_ids[", i / s, ", ",
                   i % s, "] = ", all_ids[i], " is outside the vocabulary [0, ", config_.vocab_size,
                   ")");

  const DType act = compute_;
  const float eps = static_cast<float>(config_.layer_norm_epsilon);
  const Activation fused_act = fused(config_.activation);
  const Tensor bias = position_bias(s);
  Tensor out = Tensor::empty({batch, s, dm}, DType::F32);
  Tensor x = Tensor::empty({s, dm}, DType::F32);  // the residual stream of one prompt
  Tensor h = Tensor::empty({s, dm}, act);
  Tensor attn = Tensor::empty({1, s, heads, dkv}, act);
  Tensor hidden = Tensor::empty({s, ff}, DType::F32);
  Tensor linear = config_.gated ? Tensor::empty({s, ff}, DType::F32) : Tensor();
  Tensor wo_in = Tensor::empty({s, ff}, act);

  for (int64_t b = 0; b < batch; ++b) {
    kernels::embedding(shared_, input_ids.select(b), x);
    for (const T5Block& blk : blocks_) {
      kernels::rms_norm(x, blk.attention_norm, eps, h);
      const Tensor q = blk.q.forward(h, act).reshape({1, s, heads, dkv});
      const Tensor k = blk.k.forward(h, act).reshape({1, s, heads, dkv});
      const Tensor v = blk.v.forward(h, act).reshape({1, s, heads, dkv});
      kernels::attention_with_bias(q, k, v, bias, /*causal=*/false, /*scale=*/1.0f, attn);
      blk.o.forward(attn.reshape({s, inner}), x, Activation::None, /*accumulate=*/true);
      kernels::rms_norm(x, blk.ff_norm, eps, h);
      if (config_.gated) {
        blk.wi_0.forward(h, hidden, fused_act);
        apply_unfused(config_.activation, hidden);
        blk.wi_1.forward(h, linear);
        kernels::multiply(hidden, linear, wo_in);
      } else {
        blk.wi.forward(h, hidden, fused_act);
        apply_unfused(config_.activation, hidden);
        wo_in.copy_from(hidden);
      }
      blk.wo.forward(wo_in, x, Activation::None, /*accumulate=*/true);
    }
    Tensor last = out.select(b);
    kernels::rms_norm(x, final_layer_norm_, eps, last);
  }
  return out;
}

}  // namespace paradiff::models::t5
