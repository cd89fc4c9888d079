#include "paradiff/models/t5/t5_encoder_model.h"

#include <filesystem>
#include <functional>
#include <optional>

#include "paradiff/dist/tensor_broadcast.h"
#include "paradiff/dist/tensor_transfer.h"
#include "paradiff/kernels/attention_bias.h"
#include "paradiff/kernels/channels_last.h"
#include "paradiff/kernels/embedding.h"
#include "paradiff/kernels/gemm_mode.h"
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

// The per-prompt working tensors of a block, for S tokens.
struct Scratch {
  Scratch(const T5Config& config, int64_t s, DType act)
      : h(Tensor::empty({s, config.d_model}, act)),
        attn(Tensor::empty({1, s, config.num_heads, config.d_kv}, act)),
        hidden(Tensor::empty({s, config.d_ff}, DType::F32)),
        linear(config.gated ? Tensor::empty({s, config.d_ff}, DType::F32) : Tensor()),
        wo_in(Tensor::empty({s, config.d_ff}, act)) {}
  Tensor h, attn, hidden, linear, wo_in;
};

// One block on one prompt's residual stream x (S, d_model) F32, in place.
void block_forward(const T5Config& config, DType act, const T5Block& blk, const Tensor& bias,
                   Tensor& x, Scratch& w) {
  const int64_t s = x.dim(0), heads = config.num_heads, dkv = config.d_kv;
  const float eps = static_cast<float>(config.layer_norm_epsilon);
  kernels::rms_norm(x, blk.attention_norm, eps, w.h);
  const Tensor q = blk.q.forward(w.h, act).reshape({1, s, heads, dkv});
  const Tensor k = blk.k.forward(w.h, act).reshape({1, s, heads, dkv});
  const Tensor v = blk.v.forward(w.h, act).reshape({1, s, heads, dkv});
  kernels::attention_with_bias(q, k, v, bias, /*causal=*/false, /*scale=*/1.0f, w.attn);
  blk.o.forward(w.attn.reshape({s, config.inner_dim()}), x, Activation::None,
                /*accumulate=*/true);
  kernels::rms_norm(x, blk.ff_norm, eps, w.h);
  if (config.gated) {
    blk.wi_0.forward(w.h, w.hidden, fused(config.activation));
    apply_unfused(config.activation, w.hidden);
    blk.wi_1.forward(w.h, w.linear);
    kernels::multiply(w.hidden, w.linear, w.wo_in);
  } else {
    blk.wi.forward(w.h, w.hidden, fused(config.activation));
    apply_unfused(config.activation, w.hidden);
    w.wo_in.copy_from(w.hidden);
  }
  blk.wo.forward(w.wo_in, x, Activation::None, /*accumulate=*/true);
}

// The relative position bias (num_heads, S, S) F32 from the table (num_buckets, num_heads).
Tensor position_bias_from(const T5Config& config, const Tensor& table, int64_t seq_len) {
  const int64_t heads = config.num_heads;
  // One bucket per relative position j - i in [-(S-1), S-1].
  std::vector<int64_t> bucket(static_cast<size_t>(2 * seq_len - 1));
  for (int64_t r = -(seq_len - 1); r < seq_len; ++r)
    bucket[static_cast<size_t>(r + seq_len - 1)] = relative_position_bucket(
        r, config.relative_attention_num_buckets, config.relative_attention_max_distance);
  // The bucket of every (i, j), then the table's rows (one value per head) for them: (S, S, H),
  // transposed to the (H, S, S) that attention_with_bias takes.
  Tensor ids = Tensor::empty({seq_len * seq_len}, DType::I64);
  int64_t* id = ids.data<int64_t>();
  for (int64_t i = 0; i < seq_len; ++i)
    for (int64_t j = 0; j < seq_len; ++j)
      id[i * seq_len + j] = bucket[static_cast<size_t>(j - i + seq_len - 1)];
  Tensor rows = Tensor::empty({seq_len * seq_len, heads}, DType::F32);
  kernels::embedding(table, ids, rows);
  return kernels::nhwc_to_nchw(rows.reshape({1, seq_len, seq_len, heads}))
      .reshape({heads, seq_len, seq_len});
}

// Block i's parameters ("encoder.block.i"); block 0 also holds the relative position table,
// bound into *table.
T5Block load_block(const T5Config& config, ModuleLoader& loader, int64_t i, Tensor* table) {
  const int64_t dm = config.d_model, inner = config.inner_dim(), ff = config.d_ff;
  T5Block b;
  const std::string attn = str_cat("encoder.block.", i, ".layer.0.");
  const std::string mlp = str_cat("encoder.block.", i, ".layer.1.");
  b.attention_norm = loader.parameter(attn + "layer_norm.weight", Shape{dm});
  b.q = loader.linear(attn + "SelfAttention.q", dm, inner, false);
  b.k = loader.linear(attn + "SelfAttention.k", dm, inner, false);
  b.v = loader.linear(attn + "SelfAttention.v", dm, inner, false);
  b.o = loader.linear(attn + "SelfAttention.o", inner, dm, false);
  if (i == 0)
    *table = loader.parameter(attn + "SelfAttention.relative_attention_bias.weight",
                              Shape{config.relative_attention_num_buckets, config.num_heads});
  b.ff_norm = loader.parameter(mlp + "layer_norm.weight", Shape{dm});
  if (config.gated) {
    b.wi_0 = loader.linear(mlp + "DenseReluDense.wi_0", dm, ff, false);
    b.wi_1 = loader.linear(mlp + "DenseReluDense.wi_1", dm, ff, false);
  } else {
    b.wi = loader.linear(mlp + "DenseReluDense.wi", dm, ff, false);
  }
  b.wo = loader.linear(mlp + "DenseReluDense.wo", ff, dm, false);
  return b;
}

// A transformers T5 folder's checkpoint and what T5EncoderModel reads of it: the decoder,
// lm_head and (when shared.weight exists) its tied twin are ignored.
struct T5Checkpoint {
  T5Checkpoint(const std::string& folder, const std::string& variant)
      : config(T5Config::load(model_config_path(folder, "text encoder folder"))),
        weights(std::make_shared<const CheckpointWeights>(
            Checkpoint::open_folder(folder, "model", variant))) {
    const std::string shared = "shared.weight", embed = "encoder.embed_tokens.weight";
    const bool has_shared = weights->contains(shared), has_embed = weights->contains(embed);
    if (has_shared && has_embed)
      PARADIFF_CHECK(weights->shape(shared) == weights->shape(embed), weights->describe(), ": '",
                     shared, "' and its tied twin '", embed, "' differ in shape");
    embedding = has_shared || !has_embed ? shared : embed;
    ignored = [has_shared, embed](const std::string& name) {
      return name.rfind("decoder.", 0) == 0 || name == "lm_head.weight" ||
             (has_shared && name == embed);
    };
  }
  std::vector<std::string> used_names() const {
    std::vector<std::string> out;
    for (const std::string& name : weights->names())
      if (!ignored(name)) out.push_back(name);
    return out;
  }
  T5Config config;
  std::shared_ptr<const CheckpointWeights> weights;
  std::string embedding;
  std::function<bool(const std::string&)> ignored;
};

}  // namespace

T5EncoderModel::T5EncoderModel(const T5Config& config, ModuleLoader& loader,
                               const std::string& embedding)
    : T5EncoderModel(config, loader, embedding, nullptr) {}

T5EncoderModel::T5EncoderModel(const T5Config& config, ModuleLoader& loader,
                               const std::string& embedding,
                               std::shared_ptr<const UnitPlacement> placement)
    : config_(config), compute_(loader.compute_dtype()), placement_(std::move(placement)) {
  config_.validate("T5 config");
  auto mine = [this](const std::string& unit) { return !placement_ || placement_->binds(unit); };
  const int64_t dm = config_.d_model;
  const std::string embedding_unit = embedding.substr(0, embedding.rfind('.'));
  if (mine(embedding_unit))
    shared_ = loader.tensor(embedding, Shape{config_.vocab_size, dm}, compute_);
  blocks_.resize(static_cast<size_t>(config_.num_layers));
  for (int64_t i = 0; i < config_.num_layers; ++i)
    if (mine(str_cat("encoder.block.", i)))
      blocks_[static_cast<size_t>(i)] = load_block(config_, loader, i, &relative_attention_bias_);
  if (mine("encoder.final_layer_norm"))
    final_layer_norm_ = loader.parameter("encoder.final_layer_norm.weight", Shape{dm});
  loader.finish();
  parameter_bytes_ = loader.bytes_bound();
}

std::vector<std::string> T5EncoderModel::execution_units(const T5Config& config,
                                                         const std::string& embedding) {
  std::vector<std::string> units{embedding};
  for (int64_t i = 0; i < config.num_layers; ++i) units.push_back(str_cat("encoder.block.", i));
  units.push_back("encoder.final_layer_norm");
  return units;
}

T5EncoderModel T5EncoderModel::from_pretrained_placed(const std::string& folder, DType compute,
                                                      const parallel::DeviceMap& map,
                                                      dist::Communicator& group,
                                                      const std::string& variant) {
  const T5Checkpoint checkpoint(folder, variant);
  const std::string embedding_unit =
      checkpoint.embedding.substr(0, checkpoint.embedding.rfind('.'));
  auto placement = std::make_shared<const UnitPlacement>(
      map, execution_units(checkpoint.config, embedding_unit), checkpoint.used_names(), group);
  // The predicate holds its own reference: the placement moves into the model below.
  const IgnoringWeights mine(*checkpoint.weights,
                             [&checkpoint, p = placement](const std::string& name) {
                               return checkpoint.ignored(name) || !p->binds_tensor(name);
                             });
  ModuleLoader loader(mine, compute);
  T5EncoderModel model(checkpoint.config, loader, checkpoint.embedding, std::move(placement));
  model.disk_source_ = checkpoint.weights;
  model.embedding_ = checkpoint.embedding;
  return model;
}

T5EncoderModel T5EncoderModel::from_pretrained(const std::string& folder, DType compute,
                                               const std::string& variant) {
  const T5Checkpoint checkpoint(folder, variant);
  const IgnoringWeights weights(*checkpoint.weights, checkpoint.ignored);
  ModuleLoader loader(weights, compute);
  return T5EncoderModel(checkpoint.config, loader, checkpoint.embedding);
}

T5EncoderModel T5EncoderModel::with_random_weights(const T5Config& config, DType compute,
                                                   uint64_t seed) {
  ModuleLoader loader(RandomInit{seed}, compute);
  return T5EncoderModel(config, loader);
}

Tensor T5EncoderModel::position_bias(int64_t seq_len) const {
  return position_bias_from(config_, relative_attention_bias_, seq_len);
}

void T5EncoderModel::check_ids(const Tensor& input_ids) const {
  PARADIFF_CHECK(input_ids.dtype() == DType::I64 && input_ids.ndim() == 2,
                 "T5 input_ids must be i64 (B, S), got ", input_ids.describe());
  const int64_t s = input_ids.dim(1);
  PARADIFF_CHECK(s >= 1, "T5 input_ids has no tokens");
  const int64_t* all_ids = input_ids.data<int64_t>();
  for (int64_t i = 0; i < input_ids.numel(); ++i)
    PARADIFF_CHECK(all_ids[i] >= 0 && all_ids[i] < config_.vocab_size, "T5 input_ids[", i / s, ", ",
                   i % s, "] = ", all_ids[i], " is outside the vocabulary [0, ", config_.vocab_size,
                   ")");
}

Tensor T5EncoderModel::forward(const Tensor& input_ids) const {
  check_ids(input_ids);
  if (placement_) return forward_placed(input_ids);
  const int64_t batch = input_ids.dim(0), s = input_ids.dim(1), dm = config_.d_model;
  const float eps = static_cast<float>(config_.layer_norm_epsilon);
  const Tensor bias = position_bias(s);
  Tensor out = Tensor::empty({batch, s, dm}, DType::F32);
  Tensor x = Tensor::empty({s, dm}, DType::F32);              // the residual stream of one prompt
  const DType act = kernels::activation_dtype_for(compute_);  // GEMM and attention inputs
  Scratch scratch(config_, s, act);
  for (int64_t b = 0; b < batch; ++b) {
    kernels::embedding(shared_, input_ids.select(b), x);
    for (const T5Block& blk : blocks_) block_forward(config_, act, blk, bias, x, scratch);
    Tensor last = out.select(b);
    kernels::rms_norm(x, final_layer_norm_, eps, last);
  }
  return out;
}

Tensor T5EncoderModel::forward_placed(const Tensor& input_ids) const {
  constexpr int kHiddenTag = 0x5435;  // "T5": hidden states from one stage owner to the next
  const auto& assignment = placement_->assignment();
  dist::Communicator& group = placement_->group();
  const int rank = group.rank();
  const int64_t batch = input_ids.dim(0), s = input_ids.dim(1), dm = config_.d_model;
  const float eps = static_cast<float>(config_.layer_norm_epsilon);
  const size_t blocks = blocks_.size(), head = blocks + 1;

  // The "disk" units this rank runs (rank 0), in order: each one's tensors are read ahead in a
  // background thread while the unit before it computes, bound just before it runs and freed
  // after it.
  UnitStreamer streamer(assignment, rank, 0, *disk_source_, compute_);

  // The position bias: block 0's owner sends its table (read from the file when block 0 is on
  // "disk"), every rank that runs a block builds it.
  const int table_owner = assignment.owner(size_t{1});
  Tensor table;
  if (rank == table_owner)
    table = assignment.on_disk(1) ? disk_source_->read(
                                        "encoder.block.0.layer.0.SelfAttention."
                                        "relative_attention_bias.weight",
                                        DType::F32)
                                  : relative_attention_bias_;
  dist::broadcast_tensor(group, table, table_owner);
  bool runs_block = false;
  for (size_t u = 1; u <= blocks; ++u) runs_block = runs_block || assignment.owner(u) == rank;
  const Tensor bias = runs_block ? position_bias_from(config_, table, s) : Tensor();

  const std::vector<parallel::Stage> chain = hidden_state_chain(assignment, 0);
  Tensor x;  // (B, S, d_model) F32: the residual streams of the whole batch
  Tensor out = Tensor::empty({batch, s, dm}, DType::F32);
  for (size_t k = 0; k < chain.size(); ++k) {
    const parallel::Stage& stage = chain[k];
    if (stage.rank != rank) continue;
    if (k > 0) x = dist::receive_tensor(group, chain[k - 1].rank, kHiddenTag);
    const DType act = kernels::activation_dtype_for(compute_);  // GEMM and attention inputs
    Scratch scratch(config_, s, act);
    for (size_t u = stage.first; u < stage.first + stage.count; ++u) {
      // A "disk" unit's weights, bound from the streamed tensors for this unit only.
      Tensor disk_tensor, unused_table;
      std::optional<T5Block> disk_block;
      if (assignment.on_disk(u)) {
        ModuleLoader loader(streamer.next(u), compute_);
        if (u == 0)
          disk_tensor = loader.tensor(embedding_, Shape{config_.vocab_size, dm}, compute_);
        else if (u <= blocks)
          disk_block = load_block(config_, loader, static_cast<int64_t>(u - 1), &unused_table);
        else
          disk_tensor = loader.parameter("encoder.final_layer_norm.weight", Shape{dm});
        loader.finish();
      }
      for (int64_t b = 0; b < batch; ++b) {
        if (u == 0) {
          if (b == 0) x = Tensor::empty({batch, s, dm}, DType::F32);
          Tensor row = x.select(b);
          kernels::embedding(disk_tensor.defined() ? disk_tensor : shared_, input_ids.select(b),
                             row);
        } else if (u <= blocks) {
          Tensor row = x.select(b);
          block_forward(config_, act, disk_block ? *disk_block : blocks_[u - 1], bias, row,
                        scratch);
        } else {
          PARADIFF_ASSERT(u == head);
          Tensor last = out.select(b);
          kernels::rms_norm(x.select(b), disk_tensor.defined() ? disk_tensor : final_layer_norm_,
                            eps, last);
        }
      }
    }
    if (k + 1 < chain.size()) dist::send_tensor(group, x, chain[k + 1].rank, kHiddenTag);
  }
  // last_hidden_state from final_layer_norm's owner to every rank.
  group.broadcast(out.raw_data(), out.nbytes(), chain.back().rank);
  return out;
}

}  // namespace paradiff::models::t5
