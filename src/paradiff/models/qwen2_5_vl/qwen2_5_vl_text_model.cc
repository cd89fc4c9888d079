#include "paradiff/models/qwen2_5_vl/qwen2_5_vl_text_model.h"

#include <cmath>
#include <filesystem>
#include <optional>

#include "paradiff/dist/tensor_transfer.h"
#include "paradiff/kernels/attention_bias.h"
#include "paradiff/kernels/embedding.h"
#include "paradiff/kernels/gemm_mode.h"
#include "paradiff/kernels/pointwise.h"
#include "paradiff/kernels/rms_norm.h"
#include "paradiff/kernels/rope.h"

namespace paradiff::models::qwen2_5_vl {

namespace {

using kernels::Activation;

const std::string kPrefix = "model.language_model.";  // transformers' module names
const std::string kLegacy = "model.";                 // the same modules in older files

bool starts_with(const std::string& s, const std::string& p) {
  return s.compare(0, p.size(), p) == 0;
}

// What a Qwen2_5_VLForConditionalGeneration checkpoint holds besides the text model: never read.
bool outside_text_model(const std::string& stored) {
  return starts_with(stored, "visual.") || starts_with(stored, "model.visual.") ||
         stored == "lm_head.weight";
}

// A checkpoint presented under transformers' current names, whichever of the two namings it
// uses, without the vision tower and lm_head (which the model then neither binds nor reports).
class TextModelWeights : public WeightSource {
 public:
  explicit TextModelWeights(const CheckpointWeights& base) : base_(base) {
    const bool current = base.contains(kPrefix + "embed_tokens.weight");
    legacy_ = base.contains(kLegacy + "embed_tokens.weight");
    PARADIFF_CHECK(!(current && legacy_), base.describe(), ": holds both '", kPrefix,
                   "embed_tokens.weight' and '", kLegacy,
                   "embed_tokens.weight'; a checkpoint must name the text model one way");
  }
  std::string describe() const override {
    return legacy_ ? str_cat(base_.describe(), " (older names: '", kLegacy, "*' read as '", kPrefix,
                             "*')")
                   : base_.describe();
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const std::string& n : base_.names())
      if (!outside_text_model(n)) out.push_back(canonical(n));
    return out;
  }
  bool contains(const std::string& name) const override {
    const std::string s = stored(name);
    return !s.empty() && !outside_text_model(s) && base_.contains(s);
  }
  std::vector<int64_t> shape(const std::string& name) const override {
    return base_.shape(stored(name));
  }
  Tensor read(const std::string& name, DType want) const override {
    return base_.read(stored(name), want);
  }
  std::string stored_dtype(const std::string& name) const override {
    return base_.stored_dtype(stored(name));
  }

 private:
  std::string canonical(const std::string& s) const {
    return legacy_ && starts_with(s, kLegacy) ? kPrefix + s.substr(kLegacy.size()) : s;
  }
  // The stored name of a canonical one; empty when no stored name maps to it.
  std::string stored(const std::string& name) const {
    if (!legacy_) return name;
    if (starts_with(name, kPrefix)) return kLegacy + name.substr(kPrefix.size());
    return starts_with(name, kLegacy) ? std::string() : name;
  }

  const CheckpointWeights& base_;
  bool legacy_ = false;
};

// q_proj / k_proj with the rows of each head permuted from rotate-half to interleaved pairs:
// new row 2k <- old row k, new row 2k + 1 <- old row k + D/2.
kernels::Linear rope_linear(ModuleLoader& loader, const std::string& prefix, int64_t in,
                            int64_t heads, int64_t d) {
  const int64_t out = heads * d;
  const DType compute = loader.compute_dtype();
  const Tensor w = loader.tensor(prefix + ".weight", Shape{out, in}, compute);
  const Tensor b = loader.tensor(prefix + ".bias", Shape{out}, DType::F32);
  Tensor order = Tensor::empty({out}, DType::I64);
  int64_t* o = order.data<int64_t>();
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t k = 0; k < d / 2; ++k) {
      o[h * d + 2 * k] = h * d + k;
      o[h * d + 2 * k + 1] = h * d + k + d / 2;
    }
  Tensor pw = Tensor::empty({out, in}, compute);
  Tensor pb = Tensor::empty({out, 1}, DType::F32);
  kernels::embedding(w, order, pw);
  kernels::embedding(b.reshape({out, 1}), order, pb);
  return kernels::Linear(pw, pb.reshape({out}), compute);
}

// Decoder layer i's parameters ("model.language_model.layers.i").
Qwen2_5_VLDecoderLayer load_layer(const Qwen2_5_VLTextConfig& config, ModuleLoader& loader,
                                  int64_t i) {
  const int64_t c = config.hidden_size, f = config.intermediate_size, d = config.head_dim();
  const int64_t heads = config.num_attention_heads, kv = config.num_key_value_heads;
  Qwen2_5_VLDecoderLayer l;
  const std::string p = str_cat(kPrefix, "layers.", i, ".");
  l.input_layernorm = loader.parameter(p + "input_layernorm.weight", Shape{c});
  l.q_proj = rope_linear(loader, p + "self_attn.q_proj", c, heads, d);
  l.k_proj = rope_linear(loader, p + "self_attn.k_proj", c, kv, d);
  l.v_proj = loader.linear(p + "self_attn.v_proj", c, kv * d, /*bias=*/true);
  l.o_proj = loader.linear(p + "self_attn.o_proj", heads * d, c, /*bias=*/false);
  l.post_attention_layernorm = loader.parameter(p + "post_attention_layernorm.weight", Shape{c});
  l.gate_proj = loader.linear(p + "mlp.gate_proj", c, f, /*bias=*/false);
  l.up_proj = loader.linear(p + "mlp.up_proj", c, f, /*bias=*/false);
  l.down_proj = loader.linear(p + "mlp.down_proj", f, c, /*bias=*/false);
  return l;
}

}  // namespace

Qwen2_5_VLTextModel::Qwen2_5_VLTextModel(const Qwen2_5_VLTextConfig& config, ModuleLoader& loader)
    : Qwen2_5_VLTextModel(config, loader, nullptr) {}

Qwen2_5_VLTextModel::Qwen2_5_VLTextModel(const Qwen2_5_VLTextConfig& config, ModuleLoader& loader,
                                         std::shared_ptr<const UnitPlacement> placement)
    : config_(config), compute_(loader.compute_dtype()), placement_(std::move(placement)) {
  config_.validate("Qwen2.5-VL text config");
  auto mine = [this](const std::string& unit) { return !placement_ || placement_->binds(unit); };
  const int64_t c = config_.hidden_size, d = config_.head_dim();
  if (mine(kPrefix + "embed_tokens"))
    embed_tokens_ =
        loader.tensor(kPrefix + "embed_tokens.weight", Shape{config_.vocab_size, c}, compute_);
  layers_.resize(static_cast<size_t>(config_.num_hidden_layers));
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i)
    if (mine(str_cat(kPrefix, "layers.", i)))
      layers_[static_cast<size_t>(i)] = load_layer(config_, loader, i);
  if (mine(kPrefix + "norm")) norm_ = loader.parameter(kPrefix + "norm.weight", Shape{c});
  loader.finish();
  parameter_bytes_ = loader.bytes_bound();

  // transformers' inv_freq: 1 / theta^(2k / D), each step in fp32.
  const auto theta = static_cast<float>(config_.rope_theta);
  for (int64_t k = 0; k < d / 2; ++k)
    inv_freq_.push_back(1.0f / std::pow(theta, static_cast<float>(2 * k) / static_cast<float>(d)));
}

Qwen2_5_VLTextModel Qwen2_5_VLTextModel::from_pretrained(const std::string& folder, DType compute,
                                                         const std::string& variant) {
  const std::filesystem::path dir(folder);
  PARADIFF_CHECK(std::filesystem::is_directory(dir), "text encoder folder '", folder,
                 "' does not exist or is not a directory");
  PARADIFF_CHECK(std::filesystem::exists(dir / "config.json"), "text encoder folder '", folder,
                 "' has no config.json");
  const auto config = Qwen2_5_VLTextConfig::load((dir / "config.json").string());
  const CheckpointWeights checkpoint(Checkpoint::open_folder(folder, "model", variant));
  const TextModelWeights weights(checkpoint);
  ModuleLoader loader(weights, compute);
  return Qwen2_5_VLTextModel(config, loader);
}

std::vector<std::string> Qwen2_5_VLTextModel::execution_units(const Qwen2_5_VLTextConfig& config) {
  std::vector<std::string> units{kPrefix + "embed_tokens"};
  for (int64_t i = 0; i < config.num_hidden_layers; ++i)
    units.push_back(str_cat(kPrefix, "layers.", i));
  units.push_back(kPrefix + "norm");
  return units;
}

Qwen2_5_VLTextModel Qwen2_5_VLTextModel::from_pretrained_placed(const std::string& folder,
                                                                DType compute,
                                                                const parallel::DeviceMap& map,
                                                                dist::Communicator& group,
                                                                const std::string& variant) {
  const auto config = Qwen2_5_VLTextConfig::load(model_config_path(folder, "text encoder folder"));
  auto checkpoint =
      std::make_shared<const CheckpointWeights>(Checkpoint::open_folder(folder, "model", variant));
  // The text model's view of the checkpoint, which owns it: "disk" units stream from it.
  struct OwningTextModelWeights : TextModelWeights {
    explicit OwningTextModelWeights(std::shared_ptr<const CheckpointWeights> c)
        : TextModelWeights(*c), checkpoint(std::move(c)) {}
    std::shared_ptr<const CheckpointWeights> checkpoint;
  };
  auto weights = std::make_shared<const OwningTextModelWeights>(checkpoint);
  auto placement =
      std::make_shared<const UnitPlacement>(map, execution_units(config), weights->names(), group);
  // The predicate holds its own reference: the placement moves into the model below.
  const IgnoringWeights mine(
      *weights, [p = placement](const std::string& name) { return !p->binds_tensor(name); });
  ModuleLoader loader(mine, compute);
  Qwen2_5_VLTextModel model(config, loader, std::move(placement));
  model.disk_source_ = std::move(weights);
  return model;
}

Qwen2_5_VLTextModel Qwen2_5_VLTextModel::with_random_weights(const Qwen2_5_VLTextConfig& config,
                                                             DType compute, uint64_t seed) {
  ModuleLoader loader(RandomInit{seed}, compute);
  return Qwen2_5_VLTextModel(config, loader);
}

void Qwen2_5_VLTextModel::rotary_tables(const std::vector<int64_t>& positions, Tensor& cos,
                                        Tensor& sin) const {
  const int64_t d = config_.head_dim();
  float* c = cos.data<float>();
  float* s = sin.data<float>();
  for (size_t r = 0; r < positions.size(); ++r)
    for (size_t k = 0; k < inv_freq_.size(); ++k) {
      const float angle = static_cast<float>(positions[r]) * inv_freq_[k];
      const auto col = static_cast<int64_t>(r) * d + 2 * static_cast<int64_t>(k);
      c[col] = c[col + 1] = std::cos(angle);
      s[col] = s[col + 1] = std::sin(angle);
    }
}

void Qwen2_5_VLTextModel::forward_tokens(const Tensor& ids, const std::vector<int64_t>& positions,
                                         Tensor& out) const {
  Tensor x = Tensor::empty({ids.dim(0), config_.hidden_size}, DType::F32);  // the residual stream
  run_units(0, layers_.size() + 1, ids, positions, x, out, nullptr);
}

void Qwen2_5_VLTextModel::run_units(size_t first, size_t last, const Tensor& ids,
                                    const std::vector<int64_t>& positions, Tensor& x, Tensor& out,
                                    UnitStreamer* streamer) const {
  const auto n = static_cast<int64_t>(positions.size());
  const int64_t c = config_.hidden_size, f = config_.intermediate_size;
  const int64_t heads = config_.num_attention_heads, kv = config_.num_key_value_heads;
  const int64_t d = config_.head_dim(), groups = config_.num_key_value_groups();
  const DType act = kernels::activation_dtype_for(compute_);  // GEMM and attention inputs
  const auto eps = static_cast<float>(config_.rms_norm_eps);
  const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));

  Tensor cos = Tensor::empty({n, d}, DType::F32), sin = Tensor::empty({n, d}, DType::F32);
  rotary_tables(positions, cos, sin);
  // Row s * heads + h of the repeated K/V is row s * kv + h / groups of K/V (repeat_kv).
  Tensor repeat;
  if (groups > 1) {
    repeat = Tensor::empty({n * heads}, DType::I64);
    int64_t* r = repeat.data<int64_t>();
    for (int64_t s = 0; s < n; ++s)
      for (int64_t h = 0; h < heads; ++h) r[s * heads + h] = s * kv + h / groups;
  }

  Tensor h = Tensor::empty({n, c}, act);
  Tensor q = Tensor::empty({n, heads * d}, DType::F32);
  Tensor k = Tensor::empty({n, kv * d}, DType::F32);
  Tensor q_rot = Tensor::empty({1, n, heads, d}, act);
  Tensor k_rot = Tensor::empty({1, n, kv, d}, act);
  Tensor v = Tensor::empty({n, kv * d}, act);
  Tensor k_all = groups > 1 ? Tensor::empty({1, n, heads, d}, act) : k_rot;
  Tensor v_all = groups > 1 ? Tensor::empty({1, n, heads, d}, act) : v.reshape({1, n, kv, d});
  Tensor attn = Tensor::empty({1, n, heads, d}, act);
  Tensor gate = Tensor::empty({n, f}, DType::F32);
  Tensor up = Tensor::empty({n, f}, DType::F32);
  Tensor product = Tensor::empty({n, f}, act);

  // A "disk" unit (placed models only) is bound from `streamer` just before it runs and freed
  // after it.
  auto on_disk = [&](size_t u) {
    return streamer != nullptr && placement_->assignment().on_disk(u);
  };
  if (first == 0) {
    if (on_disk(0)) {
      ModuleLoader loader(streamer->next(0), compute_);
      const Tensor table =
          loader.tensor(kPrefix + "embed_tokens.weight", Shape{config_.vocab_size, c}, compute_);
      loader.finish();
      kernels::embedding(table, ids, x);
    } else {
      kernels::embedding(embed_tokens_, ids, x);
    }
  }
  const size_t layers = layers_.size();
  for (size_t u = std::max<size_t>(first, 1); u <= std::min(last, layers); ++u) {
    std::optional<Qwen2_5_VLDecoderLayer> streamed;
    if (on_disk(u)) {
      ModuleLoader loader(streamer->next(u), compute_);
      streamed = load_layer(config_, loader, static_cast<int64_t>(u - 1));
      loader.finish();
    }
    const Qwen2_5_VLDecoderLayer& l = streamed ? *streamed : layers_[u - 1];
    kernels::rms_norm(x, l.input_layernorm, eps, h);
    l.q_proj.forward(h, q);
    l.k_proj.forward(h, k);
    l.v_proj.forward(h, v);
    kernels::apply_rope(q.reshape({1, n, heads, d}), cos, sin, q_rot);
    kernels::apply_rope(k.reshape({1, n, kv, d}), cos, sin, k_rot);
    if (groups > 1) {
      Tensor k_rows = k_all.reshape({n * heads, d}), v_rows = v_all.reshape({n * heads, d});
      kernels::embedding(k_rot.reshape({n * kv, d}), repeat, k_rows);
      kernels::embedding(v.reshape({n * kv, d}), repeat, v_rows);
    }
    kernels::attention_with_bias(q_rot, k_all, v_all, Tensor(), /*causal=*/true, scale, attn);
    l.o_proj.forward(attn.reshape({n, heads * d}), x, Activation::None, /*accumulate=*/true);

    kernels::rms_norm(x, l.post_attention_layernorm, eps, h);
    l.gate_proj.forward(h, gate, Activation::Silu);
    l.up_proj.forward(h, up);
    kernels::multiply(gate, up, product);
    l.down_proj.forward(product, x, Activation::None, /*accumulate=*/true);
  }
  if (last == layers + 1) {
    if (on_disk(last)) {
      ModuleLoader loader(streamer->next(last), compute_);
      const Tensor norm = loader.parameter(kPrefix + "norm.weight", Shape{c});
      loader.finish();
      kernels::rms_norm(x, norm, eps, out);
    } else {
      kernels::rms_norm(x, norm_, eps, out);
    }
  }
}

Tensor Qwen2_5_VLTextModel::forward(const Tensor& input_ids, const Tensor& attention_mask) const {
  PARADIFF_CHECK(input_ids.dtype() == DType::I64 && input_ids.ndim() == 2,
                 "Qwen2.5-VL input_ids must be i64 (B, S), got ", input_ids.describe());
  const int64_t batch = input_ids.dim(0), s = input_ids.dim(1), c = config_.hidden_size;
  const int64_t* all_ids = input_ids.data<int64_t>();
  for (int64_t i = 0; i < input_ids.numel(); ++i)
    PARADIFF_CHECK(all_ids[i] >= 0 && all_ids[i] < config_.vocab_size, "Qwen2.5-VL input_ids[",
                   i / s, ", ", i % s, "] = ", all_ids[i], " is outside the vocabulary [0, ",
                   config_.vocab_size, ")");
  const int64_t* mask = nullptr;
  if (attention_mask.defined()) {
    PARADIFF_CHECK(
        attention_mask.dtype() == DType::I64 && attention_mask.shape() == input_ids.shape(),
        "Qwen2.5-VL attention_mask must be i64 like input_ids ", input_ids.describe(), ", got ",
        attention_mask.describe());
    mask = attention_mask.data<int64_t>();
    for (int64_t i = 0; i < attention_mask.numel(); ++i)
      PARADIFF_CHECK(mask[i] == 0 || mask[i] == 1, "Qwen2.5-VL attention_mask[", i / s, ", ", i % s,
                     "] = ", mask[i], "; the mask must hold 0 and 1");
  }

  Tensor out = Tensor::zeros({batch, s, c}, DType::F32);
  constexpr int kHiddenTag = 0x5156;  // "QV": hidden states from one stage owner to the next
  const std::vector<parallel::Stage> chain =
      placement_ ? hidden_state_chain(placement_->assignment(), 0) : std::vector<parallel::Stage>{};
  for (int64_t b = 0; b < batch; ++b) {
    // The valid tokens, at their padded positions (transformers 5 numbers tokens 0..S-1).
    std::vector<int64_t> positions;
    for (int64_t j = 0; j < s; ++j)
      if (mask == nullptr || mask[b * s + j] != 0) positions.push_back(j);
    const auto n = static_cast<int64_t>(positions.size());
    if (n == 0) continue;
    Tensor ids = Tensor::empty({n}, DType::I64);
    for (int64_t j = 0; j < n; ++j) ids.data<int64_t>()[j] = all_ids[b * s + positions[j]];
    Tensor rows = out.select(b);
    if (placement_) {
      // The element's chain: each stage owner runs its units and hands x on; the norm's owner
      // writes the rows (broadcast with the whole batch below).
      dist::Communicator& group = placement_->group();
      // This element's "disk" units (rank 0's), each read ahead while the one before computes.
      UnitStreamer streamer(placement_->assignment(), group.rank(), 0, *disk_source_, compute_);
      Tensor x = Tensor::empty({n, c}, DType::F32);
      Tensor hidden = Tensor::empty({n, c}, DType::F32);
      for (size_t k = 0; k < chain.size(); ++k) {
        if (chain[k].rank != group.rank()) continue;
        if (k > 0) x = dist::receive_tensor(group, chain[k - 1].rank, kHiddenTag);
        run_units(chain[k].first, chain[k].first + chain[k].count - 1, ids, positions, x, hidden,
                  &streamer);
        if (k + 1 < chain.size()) dist::send_tensor(group, x, chain[k + 1].rank, kHiddenTag);
      }
      if (chain.back().rank == group.rank())
        for (int64_t j = 0; j < n; ++j) rows.slice(positions[j], 1).copy_from(hidden.slice(j, 1));
      continue;
    }
    if (positions.back() == n - 1) {  // a prefix (right padding or none): write in place
      Tensor prefix = rows.slice(0, n);
      forward_tokens(ids, positions, prefix);
      continue;
    }
    Tensor hidden = Tensor::empty({n, c}, DType::F32);
    forward_tokens(ids, positions, hidden);
    for (int64_t j = 0; j < n; ++j) rows.slice(positions[j], 1).copy_from(hidden.slice(j, 1));
  }
  // The last hidden states from the norm's owner to every rank.
  if (placement_) placement_->group().broadcast(out.raw_data(), out.nbytes(), chain.back().rank);
  return out;
}

}  // namespace paradiff::models::qwen2_5_vl
