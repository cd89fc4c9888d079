#include "paradiff/models/clip/clip_text_model.h"

#include <cmath>
#include <filesystem>
#include <optional>

#include "paradiff/dist/tensor_transfer.h"
#include "paradiff/kernels/activations.h"
#include "paradiff/kernels/attention_bias.h"
#include "paradiff/kernels/embedding.h"
#include "paradiff/kernels/gemm_mode.h"
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

// The per-prompt working tensors of a layer, for S tokens.
struct Scratch {
  Scratch(const CLIPTextConfig& config, int64_t s, DType act)
      : h(Tensor::empty({1, s, config.hidden_size}, act)),
        attn(Tensor::empty({1, s, config.num_attention_heads, config.head_dim()}, act)),
        mlp(Tensor::empty({s, config.intermediate_size}, act)),
        mlp_f32(fused(config.hidden_act) == Activation::None
                    ? Tensor::empty({s, config.intermediate_size}, DType::F32)
                    : Tensor()) {}
  Tensor h, attn, mlp, mlp_f32;
};

// One encoder layer on one prompt's residual stream x (S, hidden) F32, in place.
void layer_forward(const CLIPTextConfig& config, DType act, const CLIPEncoderLayer& l, Tensor& x,
                   Scratch& w) {
  const int64_t s = x.dim(0), c = config.hidden_size, heads = config.num_attention_heads;
  const int64_t d = config.head_dim();
  const float eps = static_cast<float>(config.layer_norm_eps);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const Activation fused_act = fused(config.hidden_act);
  const Tensor x3 = x.reshape({1, s, c});
  const Tensor h2 = w.h.reshape({s, c});
  kernels::layer_norm_modulate(x3, l.layer_norm1_shift, l.layer_norm1_scale, eps, w.h);
  const Tensor q = l.q_proj.forward(h2, act).reshape({1, s, heads, d});
  const Tensor k = l.k_proj.forward(h2, act).reshape({1, s, heads, d});
  const Tensor v = l.v_proj.forward(h2, act).reshape({1, s, heads, d});
  kernels::attention_with_bias(q, k, v, Tensor(), /*causal=*/true, scale, w.attn);
  l.out_proj.forward(w.attn.reshape({s, c}), x, Activation::None, /*accumulate=*/true);
  kernels::layer_norm_modulate(x3, l.layer_norm2_shift, l.layer_norm2_scale, eps, w.h);
  if (fused_act != Activation::None) {
    l.fc1.forward(h2, w.mlp, fused_act);
  } else {
    l.fc1.forward(h2, w.mlp_f32);
    apply_unfused(config.hidden_act, w.mlp_f32, w.mlp);
  }
  l.fc2.forward(w.mlp, x, Activation::None, /*accumulate=*/true);
}

// One encoder layer's parameters, under `lp` (".../encoder.layers.i").
CLIPEncoderLayer load_layer(const CLIPTextConfig& config, ModuleLoader& loader,
                            const std::string& lp) {
  const int64_t c = config.hidden_size, f = config.intermediate_size;
  CLIPEncoderLayer l;
  bind_layer_norm(loader, lp + ".layer_norm1", c, l.layer_norm1_scale, l.layer_norm1_shift);
  l.q_proj = loader.linear(lp + ".self_attn.q_proj", c, c);
  l.k_proj = loader.linear(lp + ".self_attn.k_proj", c, c);
  l.v_proj = loader.linear(lp + ".self_attn.v_proj", c, c);
  l.out_proj = loader.linear(lp + ".self_attn.out_proj", c, c);
  bind_layer_norm(loader, lp + ".layer_norm2", c, l.layer_norm2_scale, l.layer_norm2_shift);
  l.fc1 = loader.linear(lp + ".mlp.fc1", c, f);
  l.fc2 = loader.linear(lp + ".mlp.fc2", f, c);
  return l;
}

// A checkpoint under the model's module names (its "text_model." prefix, if any, dropped),
// without the old position_ids buffer: what "disk" units stream from. Owns the checkpoint.
class UnprefixedWeights : public WeightSource {
 public:
  UnprefixedWeights(std::shared_ptr<const CheckpointWeights> base, std::string prefix)
      : base_(std::move(base)), prefix_(std::move(prefix)) {}
  std::string describe() const override { return base_->describe(); }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const std::string& name : base_->names()) {
      const std::string bare = name.rfind(prefix_, 0) == 0 ? name.substr(prefix_.size()) : name;
      if (bare != "embeddings.position_ids") out.push_back(bare);
    }
    return out;
  }
  bool contains(const std::string& name) const override { return base_->contains(stored(name)); }
  std::vector<int64_t> shape(const std::string& name) const override {
    return base_->shape(stored(name));
  }
  Tensor read(const std::string& name, DType want) const override {
    return base_->read(stored(name), want);
  }
  std::string stored_dtype(const std::string& name) const override {
    return base_->stored_dtype(stored(name));
  }

 private:
  std::string stored(const std::string& name) const { return prefix_ + name; }
  std::shared_ptr<const CheckpointWeights> base_;
  std::string prefix_;
};

// A transformers CLIP folder's checkpoint: the prefix of its names, and the tensors the model
// reads (an old checkpoint's position_ids buffer is accepted and unused).
struct ClipCheckpoint {
  ClipCheckpoint(const std::string& folder, const std::string& variant)
      : config(CLIPTextConfig::load(model_config_path(folder, "text encoder folder"))),
        weights(std::make_shared<const CheckpointWeights>(
            Checkpoint::open_folder(folder, "model", variant))),
        prefix(weights->contains("text_model.embeddings.token_embedding.weight") ? "text_model."
                                                                                 : "") {}
  // Binds the old position_ids buffer, when there is one, so that finish() accepts it.
  void bind_position_ids(ModuleLoader& loader) const {
    const std::string position_ids = prefix + "embeddings.position_ids";
    if (weights->contains(position_ids))
      loader.tensor(position_ids, Shape{1, config.max_position_embeddings}, DType::I64);
  }
  CLIPTextConfig config;
  std::shared_ptr<const CheckpointWeights> weights;
  std::string prefix;
};

}  // namespace

CLIPTextModel::CLIPTextModel(const CLIPTextConfig& config, ModuleLoader& loader,
                             const std::string& prefix)
    : CLIPTextModel(config, loader, prefix, nullptr) {}

CLIPTextModel::CLIPTextModel(const CLIPTextConfig& config, ModuleLoader& loader,
                             const std::string& prefix,
                             std::shared_ptr<const UnitPlacement> placement)
    : config_(config), compute_(loader.compute_dtype()), placement_(std::move(placement)) {
  config_.validate("CLIP text config");
  auto mine = [this](const std::string& unit) { return !placement_ || placement_->binds(unit); };
  const int64_t c = config_.hidden_size;
  const std::string p = prefix;
  if (mine("embeddings")) {
    token_embedding_ = loader.tensor(p + "embeddings.token_embedding.weight",
                                     Shape{config_.vocab_size, c}, compute_);
    position_embedding_ = loader.parameter(p + "embeddings.position_embedding.weight",
                                           Shape{config_.max_position_embeddings, c});
  }
  layers_.resize(static_cast<size_t>(config_.num_hidden_layers));
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i)
    if (mine(str_cat("encoder.layers.", i)))
      layers_[static_cast<size_t>(i)] =
          load_layer(config_, loader, str_cat(p, "encoder.layers.", i));
  if (mine("final_layer_norm"))
    bind_layer_norm(loader, p + "final_layer_norm", c, final_scale_, final_shift_);
  loader.finish();
  parameter_bytes_ = loader.bytes_bound();
}

std::vector<std::string> CLIPTextModel::execution_units(const CLIPTextConfig& config) {
  std::vector<std::string> units{"embeddings"};
  for (int64_t i = 0; i < config.num_hidden_layers; ++i)
    units.push_back(str_cat("encoder.layers.", i));
  units.push_back("final_layer_norm");
  return units;
}

CLIPTextModel CLIPTextModel::from_pretrained_placed(const std::string& folder, DType compute,
                                                    const parallel::DeviceMap& map,
                                                    dist::Communicator& group,
                                                    const std::string& variant) {
  const ClipCheckpoint checkpoint(folder, variant);
  const std::string& prefix = checkpoint.prefix;
  // The map names the model's modules; the checkpoint's names may carry the prefix.
  auto strip = [prefix](const std::string& name) {
    return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
  };
  std::vector<std::string> names;
  for (const std::string& name : checkpoint.weights->names()) names.push_back(strip(name));
  auto placement =
      std::make_shared<const UnitPlacement>(map, execution_units(checkpoint.config), names, group);
  // The predicate holds its own reference: the placement moves into the model below.
  const IgnoringWeights mine(*checkpoint.weights, [strip, p = placement](const std::string& name) {
    return !p->binds_tensor(strip(name));
  });
  ModuleLoader loader(mine, compute);
  if (placement->binds("embeddings")) checkpoint.bind_position_ids(loader);
  CLIPTextModel model(checkpoint.config, loader, prefix, std::move(placement));
  model.disk_source_ = std::make_shared<const UnprefixedWeights>(checkpoint.weights, prefix);
  return model;
}

CLIPTextModel CLIPTextModel::from_pretrained(const std::string& folder, DType compute,
                                             const std::string& variant) {
  const ClipCheckpoint checkpoint(folder, variant);
  ModuleLoader loader(*checkpoint.weights, compute);
  // Checkpoints from before transformers 4.31 also hold the position_ids buffer.
  checkpoint.bind_position_ids(loader);
  return CLIPTextModel(checkpoint.config, loader, checkpoint.prefix);
}

CLIPTextModel CLIPTextModel::with_random_weights(const CLIPTextConfig& config, DType compute,
                                                 uint64_t seed) {
  ModuleLoader loader(RandomInit{seed}, compute);
  return CLIPTextModel(config, loader);
}

void CLIPTextModel::finish_prompt(const int64_t* ids, const Tensor& x, Tensor& last,
                                  Tensor pooled) const {
  finish_prompt(ids, x, last, std::move(pooled), final_scale_, final_shift_);
}

void CLIPTextModel::finish_prompt(const int64_t* ids, const Tensor& x, Tensor& last, Tensor pooled,
                                  const Tensor& scale, const Tensor& shift) const {
  const int64_t s = x.dim(0), c = config_.hidden_size;
  const float eps = static_cast<float>(config_.layer_norm_eps);
  kernels::layer_norm_modulate(x.reshape({1, s, c}), shift, scale, eps, last);
  // transformers' pooled position: argmax of the ids (legacy eos_token_id 2), else the first
  // EOS; argmax returns the first maximum, and no EOS gives position 0.
  int64_t pos = 0;
  for (int64_t t = 0; t < s; ++t) {
    if (config_.legacy_pooling() ? ids[t] > ids[pos] : ids[t] == config_.eos_token_id) {
      pos = t;
      if (!config_.legacy_pooling()) break;
    }
  }
  pooled.copy_from(last.select(0).select(pos));
}

CLIPTextModelOutput CLIPTextModel::forward(const Tensor& input_ids) const {
  PARADIFF_CHECK(input_ids.dtype() == DType::I64 && input_ids.ndim() == 2,
                 "CLIP input_ids must be i64 (B, S), got ", input_ids.describe());
  const int64_t batch = input_ids.dim(0), s = input_ids.dim(1);
  const int64_t c = config_.hidden_size;
  PARADIFF_CHECK(
      s >= 1 && s <= config_.max_position_embeddings, "CLIP input_ids has ", s,
      " tokens; the model takes 1 to max_position_embeddings = ", config_.max_position_embeddings);
  const int64_t* all_ids = input_ids.data<int64_t>();
  for (int64_t i = 0; i < input_ids.numel(); ++i)
    PARADIFF_CHECK(all_ids[i] >= 0 && all_ids[i] < config_.vocab_size, "CLIP input_ids[", i / s,
                   ", ", i % s, "] = ", all_ids[i], " is outside the vocabulary [0, ",
                   config_.vocab_size, ")");
  if (placement_) return forward_placed(input_ids);

  CLIPTextModelOutput out{Tensor::empty({batch, s, c}, DType::F32),
                          Tensor::empty({batch, c}, DType::F32)};
  Tensor x = Tensor::empty({s, c}, DType::F32);               // the residual stream of one prompt
  const DType act = kernels::activation_dtype_for(compute_);  // GEMM and attention inputs
  Scratch scratch(config_, s, act);
  for (int64_t b = 0; b < batch; ++b) {
    // Embeddings: token row (in the compute dtype) + position row, in fp32.
    kernels::embedding(token_embedding_, input_ids.select(b), x);
    kernels::add(x, position_embedding_.slice(0, s), x);
    for (const CLIPEncoderLayer& l : layers_) layer_forward(config_, act, l, x, scratch);
    Tensor last = out.last_hidden_state.slice(b, 1);
    finish_prompt(all_ids + b * s, x, last, out.pooler_output.select(b));
  }
  return out;
}

CLIPTextModelOutput CLIPTextModel::forward_placed(const Tensor& input_ids) const {
  constexpr int kHiddenTag = 0x434c;  // "CL": hidden states from one stage owner to the next
  const auto& assignment = placement_->assignment();
  dist::Communicator& group = placement_->group();
  const int rank = group.rank();
  const int64_t batch = input_ids.dim(0), s = input_ids.dim(1), c = config_.hidden_size;
  const int64_t* all_ids = input_ids.data<int64_t>();
  const size_t layers = layers_.size();
  const std::vector<parallel::Stage> chain = hidden_state_chain(assignment, 0);
  // The "disk" units this rank runs (rank 0), in order: each one's tensors are read ahead in a
  // background thread while the unit before it computes.
  UnitStreamer streamer(assignment, rank, 0, *disk_source_, compute_);
  Tensor x;  // (B, S, hidden) F32: the residual streams of the whole batch
  CLIPTextModelOutput out{Tensor::empty({batch, s, c}, DType::F32),
                          Tensor::empty({batch, c}, DType::F32)};
  for (size_t k = 0; k < chain.size(); ++k) {
    const parallel::Stage& stage = chain[k];
    if (stage.rank != rank) continue;
    if (k > 0) x = dist::receive_tensor(group, chain[k - 1].rank, kHiddenTag);
    const DType act = kernels::activation_dtype_for(compute_);  // GEMM and attention inputs
    Scratch scratch(config_, s, act);
    for (size_t u = stage.first; u < stage.first + stage.count; ++u) {
      // A "disk" unit's weights, bound from the streamed tensors for this unit only.
      Tensor token_embedding = token_embedding_, position_embedding = position_embedding_;
      Tensor final_scale = final_scale_, final_shift = final_shift_;
      std::optional<CLIPEncoderLayer> streamed;
      if (assignment.on_disk(u)) {
        ModuleLoader loader(streamer.next(u), compute_);
        if (u == 0) {
          token_embedding = loader.tensor("embeddings.token_embedding.weight",
                                          Shape{config_.vocab_size, c}, compute_);
          position_embedding = loader.parameter("embeddings.position_embedding.weight",
                                                Shape{config_.max_position_embeddings, c});
        } else if (u <= layers) {
          streamed = load_layer(config_, loader, assignment.units()[u]);
        } else {
          bind_layer_norm(loader, "final_layer_norm", c, final_scale, final_shift);
        }
        loader.finish();
      }
      if (u == 0) x = Tensor::empty({batch, s, c}, DType::F32);
      for (int64_t b = 0; b < batch; ++b) {
        Tensor row = x.select(b);
        if (u == 0) {
          kernels::embedding(token_embedding, input_ids.select(b), row);
          kernels::add(row, position_embedding.slice(0, s), row);
        } else if (u <= layers) {
          layer_forward(config_, act, streamed ? *streamed : layers_[u - 1], row, scratch);
        } else {
          Tensor last = out.last_hidden_state.slice(b, 1);
          finish_prompt(all_ids + b * s, row, last, out.pooler_output.select(b), final_scale,
                        final_shift);
        }
      }
    }
    if (k + 1 < chain.size()) dist::send_tensor(group, x, chain[k + 1].rank, kHiddenTag);
  }
  // Both outputs from final_layer_norm's owner to every rank.
  const int head = chain.back().rank;
  group.broadcast(out.last_hidden_state.raw_data(), out.last_hidden_state.nbytes(), head);
  group.broadcast(out.pooler_output.raw_data(), out.pooler_output.nbytes(), head);
  return out;
}

}  // namespace paradiff::models::clip
