#include "paradiff/models/flux/flux_transformer.h"

#include <filesystem>
#include <map>

#include "paradiff/core/block_weights.h"
#include "paradiff/core/logging.h"
#include "paradiff/dist/tensor_broadcast.h"
#include "paradiff/dist/tensor_transfer.h"
#include "paradiff/io/safetensors.h"
#include "paradiff/kernels/activations.h"
#include "paradiff/kernels/layer_norm.h"
#include "paradiff/kernels/pointwise.h"
#include "paradiff/models/flux/flux_bfl_checkpoint.h"
#include "paradiff/parallel/context_parallel_attention.h"

namespace paradiff::models::flux {

namespace {

// An input as F32 (diffusers casts inside forward too), or an error naming it.
Tensor as_f32(const Tensor& t, const char* name) {
  PARADIFF_CHECK(t.defined(), "transformer input '", name, "' is missing");
  PARADIFF_CHECK(is_floating(t.dtype()), "transformer input '", name,
                 "' must be floating point, got ", t.describe());
  return t.dtype() == DType::F32 ? t : t.to(DType::F32);
}

// Position ids (S, A), accepting the deprecated (1, S, A) as diffusers does.
Tensor ids_2d(const Tensor& ids, const char* name) {
  Tensor t = as_f32(ids, name);
  if (t.ndim() == 3 && t.dim(0) == 1) {
    log_warning("passing 3-D '", name, "' is deprecated: the batch dim is dropped");
    t = t.select(0);
  }
  return t;
}

}  // namespace

FluxTransformer2DModel::FluxTransformer2DModel(const FluxTransformerConfig& config,
                                               ModuleLoader& loader)
    : FluxTransformer2DModel(config, loader, nullptr) {}

FluxTransformer2DModel::FluxTransformer2DModel(const FluxTransformerConfig& config,
                                               ModuleLoader& loader,
                                               std::shared_ptr<const UnitPlacement> placement)
    : config_(config),
      compute_(loader.compute_dtype()),
      attention_(parallel::make_local_attention()),
      placement_(std::move(placement)) {
  config_.validate("transformer config");
  // Blocks whose weights another store holds in part (--fully-shard-degree) are gathered before
  // each runs (core/block_weights.h).
  block_weights_ = current_block_weights();
  PARADIFF_CHECK(!block_weights_ || !placement_,
                 "--fully-shard-degree cannot be combined with a placement (device map)");
  // Without a placement this process binds every unit.
  auto mine = [this](const std::string& unit) { return !placement_ || placement_->binds(unit); };
  const int64_t c = config_.inner_dim();
  if (mine("x_embedder")) x_embedder_ = loader.linear("x_embedder", config_.in_channels, c);
  if (mine("context_embedder"))
    context_embedder_ = loader.linear("context_embedder", config_.joint_attention_dim, c);
  if (mine("time_text_embed"))
    time_text_embed_ = FluxTimeTextEmbedding(
        loader, "time_text_embed", c, config_.pooled_projection_dim, config_.guidance_embeds);
  transformer_blocks_.resize(static_cast<size_t>(config_.num_layers));
  for (int64_t i = 0; i < config_.num_layers; ++i) {
    const std::string name = str_cat("transformer_blocks.", i);
    WeightBlockScope block(static_cast<int>(i));
    if (mine(name)) transformer_blocks_[static_cast<size_t>(i)].emplace(loader, name, config_);
  }
  single_transformer_blocks_.resize(static_cast<size_t>(config_.num_single_layers));
  for (int64_t i = 0; i < config_.num_single_layers; ++i) {
    const std::string name = str_cat("single_transformer_blocks.", i);
    WeightBlockScope block(static_cast<int>(config_.num_layers + i));
    if (mine(name))
      single_transformer_blocks_[static_cast<size_t>(i)].emplace(loader, name, config_);
  }
  if (mine("norm_out")) norm_out_ = loader.linear("norm_out.linear", c, 2 * c);
  if (mine("proj_out")) proj_out_ = loader.linear("proj_out", c, config_.output_channels());
  loader.finish();
  parameter_bytes_ = loader.bytes_bound();
}

std::vector<std::string> FluxTransformer2DModel::execution_units(
    const FluxTransformerConfig& config) {
  std::vector<std::string> units{"time_text_embed", "context_embedder", "x_embedder"};
  for (int64_t i = 0; i < config.num_layers; ++i)
    units.push_back(str_cat("transformer_blocks.", i));
  for (int64_t i = 0; i < config.num_single_layers; ++i)
    units.push_back(str_cat("single_transformer_blocks.", i));
  units.push_back("norm_out");
  units.push_back("proj_out");
  return units;
}

FluxTransformer2DModel FluxTransformer2DModel::from_pretrained_placed(
    const std::string& folder, DType compute, const parallel::DeviceMap& map,
    dist::Communicator& group, const std::string& variant) {
  const auto config = FluxTransformerConfig::load(model_config_path(folder, "transformer folder"));
  auto weights = std::make_shared<const CheckpointWeights>(
      Checkpoint::open_folder(folder, "diffusion_pytorch_model", variant));
  auto placement =
      place_transformer_units(map, execution_units(config), 2, weights->names(), group);
  const IgnoringWeights mine(
      *weights, [p = placement](const std::string& name) { return !p->binds_tensor(name); });
  ModuleLoader loader(mine, compute);
  FluxTransformer2DModel model(config, loader, std::move(placement));
  model.disk_source_ = std::move(weights);
  return model;
}

FluxTransformer2DModel FluxTransformer2DModel::from_pretrained(const std::string& folder,
                                                               DType compute,
                                                               const std::string& variant) {
  const auto config = FluxTransformerConfig::load(model_config_path(folder, "transformer folder"));
  const CheckpointWeights weights(
      Checkpoint::open_folder(folder, "diffusion_pytorch_model", variant));
  ModuleLoader loader(weights, compute);
  return FluxTransformer2DModel(config, loader);
}

FluxTransformer2DModel FluxTransformer2DModel::from_single_file(const std::string& checkpoint,
                                                                const FluxTransformerConfig& config,
                                                                DType compute) {
  const FluxBflWeights weights(Checkpoint::open(checkpoint), config);
  ModuleLoader loader(weights, compute);
  return FluxTransformer2DModel(config, loader);
}

FluxTransformer2DModel FluxTransformer2DModel::with_random_weights(
    const FluxTransformerConfig& config, DType compute, uint64_t seed) {
  ModuleLoader loader(RandomInit{seed}, compute);
  return FluxTransformer2DModel(config, loader);
}

void FluxTransformer2DModel::set_attention_backend(
    std::shared_ptr<parallel::AttentionBackend> backend) {
  PARADIFF_CHECK(backend != nullptr, "attention backend must not be null");
  attention_ = std::move(backend);
}

void FluxTransformer2DModel::validate_inputs(const FluxTransformerInputs& in) const {
  const auto& c = config_;
  const Tensor hidden = as_f32(in.hidden_states, "hidden_states");
  PARADIFF_CHECK(hidden.ndim() == 3 && hidden.dim(2) == c.in_channels,
                 "hidden_states must be (B, S_img, ", c.in_channels, "), got ", hidden.describe());
  const int64_t b = hidden.dim(0), si = hidden.dim(1);
  PARADIFF_CHECK(b >= 1, "hidden_states has an empty batch");
  const Tensor enc = as_f32(in.encoder_hidden_states, "encoder_hidden_states");
  PARADIFF_CHECK(enc.ndim() == 3 && enc.dim(0) == b && enc.dim(2) == c.joint_attention_dim,
                 "encoder_hidden_states must be (", b, ", S_txt, ", c.joint_attention_dim,
                 "), got ", enc.describe());
  as_f32(in.pooled_projections, "pooled_projections")
      .expect_shape(Shape{b, c.pooled_projection_dim}, "pooled_projections");
  as_f32(in.timestep, "timestep").expect_shape(Shape{b}, "timestep");
  const int64_t axes = static_cast<int64_t>(c.axes_dims_rope.size());
  ids_2d(in.img_ids, "img_ids").expect_shape(Shape{si, axes}, "img_ids");
  ids_2d(in.txt_ids, "txt_ids").expect_shape(Shape{enc.dim(1), axes}, "txt_ids");
  if (c.guidance_embeds) {
    PARADIFF_CHECK(in.guidance.defined(),
                   "this model has guidance embeddings (guidance_embeds = true): the 'guidance' "
                   "input is required");
    as_f32(in.guidance, "guidance").expect_shape(Shape{b}, "guidance");
  } else {
    PARADIFF_CHECK(!in.guidance.defined(),
                   "this model has no guidance embeddings (guidance_embeds = false), but a "
                   "'guidance' input was given");
  }
}

parallel::NamedTensors FluxTransformerInputs::to_named() const {
  return {{"hidden_states", hidden_states},
          {"encoder_hidden_states", encoder_hidden_states},
          {"pooled_projections", pooled_projections},
          {"timestep", timestep},
          {"img_ids", img_ids},
          {"txt_ids", txt_ids},
          {"guidance", guidance}};
}

FluxTransformerInputs FluxTransformerInputs::from_named(const parallel::NamedTensors& named) {
  auto get = [&](const char* name) {
    auto it = named.find(name);
    return it == named.end() ? Tensor() : it->second;
  };
  return {get("hidden_states"),
          get("encoder_hidden_states"),
          get("pooled_projections"),
          get("timestep"),
          get("img_ids"),
          get("txt_ids"),
          get("guidance")};
}

FluxTransformerInputs FluxTransformerInputs::load(const std::string& safetensors_path) {
  const auto file = SafetensorsFile::open(safetensors_path);
  parallel::NamedTensors named;
  for (const char* name : {"hidden_states", "encoder_hidden_states", "pooled_projections",
                           "timestep", "img_ids", "txt_ids", "guidance"})
    if (file.contains(name)) named[name] = file.read(name, DType::F32);
  return from_named(named);
}

const parallel::ContextParallelPlan& FluxTransformer2DModel::context_parallel_plan() {
  static const parallel::ContextParallelPlan plan{{{"hidden_states", 1, true},
                                                   {"encoder_hidden_states", 1, true},
                                                   {"img_ids", 0},
                                                   {"txt_ids", 0}},
                                                  {{"sample", 1, "hidden_states"}}};
  return plan;
}

FluxTransformer2DModel FluxTransformer2DModel::from_pretrained(
    const std::string& folder, DType compute, const parallel::ParallelConfig& parallel_config,
    dist::Communicator& world) {
  auto mesh = std::make_shared<parallel::DeviceMesh>(world, parallel_config);
  auto model = from_pretrained(folder, compute);
  model.enable_parallelism(std::move(mesh));
  return model;
}

void FluxTransformer2DModel::enable_parallelism(const parallel::ContextParallelConfig& config,
                                                dist::Communicator& world) {
  enable_parallelism(std::make_shared<parallel::DeviceMesh>(world, config));
}

void FluxTransformer2DModel::enable_parallelism(std::shared_ptr<parallel::DeviceMesh> mesh) {
  PARADIFF_CHECK(mesh != nullptr, "enable_parallelism needs a device mesh");
  // A mesh without context parallelism (data or cfg parallel only) leaves forwards local.
  if (mesh->context_parallel_enabled())
    attention_ = std::make_shared<parallel::ContextParallelAttention>(*mesh);
  mesh_ = std::move(mesh);
}

Tensor FluxTransformer2DModel::forward(const FluxTransformerInputs& in) const {
  validate_inputs(in);
  // Under a placement the stages run in turn; with context parallelism as well, each stage is a
  // ring/Ulysses group and every rank hands its share of the tokens to the rank with the same
  // context-parallel index in the next stage (the stage communicator links exactly those).
  auto run = [this](const FluxTransformerInputs& local, const parallel::ForwardContext& context) {
    return placement_ ? forward_placed(local, context) : forward_local(local, context);
  };
  if (!parallelism_enabled()) return run(in, parallel::ForwardContext{});
  const auto outputs = parallel::context_parallel_forward(
      context_parallel_plan(), mesh_->context_parallel(), in.to_named(),
      [&run](const parallel::NamedTensors& local, const parallel::ForwardContext& context) {
        return parallel::NamedTensors{
            {"sample", run(FluxTransformerInputs::from_named(local), context)}};
      });
  return outputs.at("sample");
}

Tensor FluxTransformer2DModel::conditioning(const FluxTransformerInputs& in,
                                            const FluxTimeTextEmbedding& time_text_embed) const {
  // temb for the whole batch; timestep and guidance are scaled by 1000 inside the model.
  auto times_1000 = [](const Tensor& t, const char* name) {
    const Tensor f32 = as_f32(t, name);
    Tensor out = Tensor::empty(f32.shape(), DType::F32);
    kernels::scale(f32, 1000.0f, out);
    return out;
  };
  const Tensor temb = time_text_embed.forward(
      times_1000(in.timestep, "timestep"),
      config_.guidance_embeds ? times_1000(in.guidance, "guidance") : Tensor(),
      as_f32(in.pooled_projections, "pooled_projections"));
  Tensor silu_temb = Tensor::empty(temb.shape(), DType::F32);
  kernels::silu(temb, silu_temb);
  return silu_temb;
}

RotaryTables FluxTransformer2DModel::rotary_tables(const FluxTransformerInputs& in) const {
  // Rotary tables for the joint sequence [text, image].
  const Tensor txt_ids = ids_2d(in.txt_ids, "txt_ids"), img_ids = ids_2d(in.img_ids, "img_ids");
  const int64_t st = txt_ids.dim(0), si = img_ids.dim(0);
  Tensor ids = Tensor::empty({st + si, txt_ids.dim(1)}, DType::F32);
  ids.slice(0, st).copy_from(txt_ids);
  ids.slice(st, si).copy_from(img_ids);
  return flux_rotary_tables(ids, config_.axes_dims_rope);
}

void FluxTransformer2DModel::embed(const Tensor& enc, const Tensor& hidden,
                                   const kernels::Linear& context_embedder,
                                   const kernels::Linear& x_embedder, Tensor& h) const {
  const int64_t st = enc.dim(0);
  Tensor h_txt = h.slice(0, st), h_img = h.slice(st, hidden.dim(0));
  context_embedder.forward(enc, h_txt);
  x_embedder.forward(hidden, h_img);
}

void FluxTransformer2DModel::output_head(const Tensor& h, int64_t text_tokens,
                                         const Tensor& silu_row, const kernels::Linear& norm_out,
                                         const kernels::Linear& proj_out, Tensor& out) const {
  // AdaLayerNormContinuous: the embedding's halves are (scale, shift), in that order.
  const int64_t c = config_.inner_dim(), si = h.dim(0) - text_tokens;
  const Tensor emb = norm_out.forward(silu_row).reshape({2, c});
  Tensor normed = Tensor::empty({1, si, c}, kernels::activation_dtype_for(compute_));
  kernels::layer_norm_modulate(h.slice(text_tokens, si).reshape({1, si, c}), emb.slice(1, 1),
                               emb.slice(0, 1), 1e-6f, normed);
  proj_out.forward(normed.reshape({si, c}), out);
}

Tensor FluxTransformer2DModel::forward_local(const FluxTransformerInputs& in,
                                             const parallel::ForwardContext& context) const {
  validate_inputs(in);
  const auto& cfg = config_;
  const Tensor hidden = as_f32(in.hidden_states, "hidden_states");
  const Tensor enc = as_f32(in.encoder_hidden_states, "encoder_hidden_states");
  const int64_t b = hidden.dim(0), si = hidden.dim(1), st = enc.dim(1), s = st + si;
  const int64_t c = cfg.inner_dim();
  const Tensor silu_temb = conditioning(in, time_text_embed_);
  const RotaryTables rotary = rotary_tables(in);

  Tensor sample = Tensor::empty({b, si, cfg.output_channels()}, DType::F32);
  // One batch element at a time: every row range of h is then a contiguous view.
  for (int64_t i = 0; i < b; ++i) {
    Tensor h = Tensor::empty({s, c}, DType::F32);
    embed(enc.select(i), hidden.select(i), context_embedder_, x_embedder_, h);
    const Tensor silu_row = silu_temb.slice(i, 1);
    const BlockContext ctx{st,       &silu_row,
                           &rotary,  attention_.get(),
                           &context, kernels::activation_dtype_for(compute_)};
    int index = 0;
    for (const auto& block : transformer_blocks_) {
      if (block_weights_) block_weights_->before_block(index++);
      block->forward(h, ctx);
    }
    for (const auto& block : single_transformer_blocks_) {
      if (block_weights_) block_weights_->before_block(index++);
      block->forward(h, ctx);
    }
    Tensor out = sample.select(i);
    output_head(h, st, silu_row, norm_out_, proj_out_, out);
  }
  return sample;
}

FluxTransformer2DModel::StreamedUnit FluxTransformer2DModel::bind_streamed(
    const std::string& unit, const WeightSource& source) const {
  ModuleLoader loader(source, compute_);
  StreamedUnit out;
  const int64_t c = config_.inner_dim();
  if (unit.rfind("transformer_blocks.", 0) == 0)
    out.double_block.emplace(loader, unit, config_);
  else if (unit.rfind("single_transformer_blocks.", 0) == 0)
    out.single_block.emplace(loader, unit, config_);
  else if (unit == "time_text_embed")
    out.time_text_embed = FluxTimeTextEmbedding(loader, unit, c, config_.pooled_projection_dim,
                                                config_.guidance_embeds);
  else if (unit == "context_embedder")
    out.linear = loader.linear(unit, config_.joint_attention_dim, c);
  else if (unit == "x_embedder")
    out.linear = loader.linear(unit, config_.in_channels, c);
  else if (unit == "norm_out")
    out.linear = loader.linear("norm_out.linear", c, 2 * c);
  else if (unit == "proj_out")
    out.linear = loader.linear("proj_out", c, config_.output_channels());
  else
    throw Error(str_cat("placement: '", unit, "' cannot be streamed from disk"));
  loader.finish();
  return out;
}

Tensor FluxTransformer2DModel::forward_placed(const FluxTransformerInputs& in,
                                              const parallel::ForwardContext& context) const {
  constexpr int kHiddenTag = 0x504c;  // "PL": hidden states from one stage owner to the next
  const auto& cfg = config_;
  const auto& assignment = placement_->assignment();
  dist::Communicator& group = placement_->group();
  const int rank = group.rank();
  const Tensor hidden = as_f32(in.hidden_states, "hidden_states");
  const Tensor enc = as_f32(in.encoder_hidden_states, "encoder_hidden_states");
  const int64_t b = hidden.dim(0), si = hidden.dim(1), st = enc.dim(1), s = st + si;
  const int64_t c = cfg.inner_dim();

  // The "disk" units this rank runs, in order from time_text_embed on: each one's tensors are
  // read ahead (in a background thread, while the unit before it computes) and bound just
  // before it runs.
  UnitStreamer streamer(assignment, rank, 0, *disk_source_, compute_);
  auto stream = [&](size_t u) { return bind_streamed(assignment.units()[u], streamer.next(u)); };

  // Conditioning, once per forward: SiLU(temb) from its owner to every rank; the RoPE tables
  // from the ids every rank holds.
  const int temb_owner = assignment.owner("time_text_embed");
  Tensor silu_temb;
  if (rank == temb_owner) {
    const StreamedUnit disk = assignment.on_disk(0) ? stream(0) : StreamedUnit{};
    silu_temb = conditioning(in, assignment.on_disk(0) ? disk.time_text_embed : time_text_embed_);
  }
  dist::broadcast_tensor(group, silu_temb, temb_owner);
  const RotaryTables rotary = rotary_tables(in);

  // The chain of units that carry the hidden states (time_text_embed, unit 0, is not in it).
  const std::vector<parallel::Stage> chain = hidden_state_chain(assignment, 1);
  const size_t first_double = 3, first_single = first_double + transformer_blocks_.size(),
               head = first_single + single_transformer_blocks_.size();

  Tensor hs;  // (B, S, C) F32: the joint hidden states of the whole batch
  Tensor sample = Tensor::empty({b, si, cfg.output_channels()}, DType::F32);
  for (size_t k = 0; k < chain.size(); ++k) {
    const parallel::Stage& stage = chain[k];
    if (stage.rank != rank) continue;
    if (k > 0) hs = dist::receive_tensor(group, chain[k - 1].rank, kHiddenTag);
    for (size_t u = stage.first; u < stage.first + stage.count; ++u) {
      if (u == 1) {  // context_embedder with x_embedder (one owner): start the joint states
        const StreamedUnit ctx = assignment.on_disk(1) ? stream(1) : StreamedUnit{};
        const StreamedUnit x = assignment.on_disk(2) ? stream(2) : StreamedUnit{};
        hs = Tensor::empty({b, s, c}, DType::F32);
        for (int64_t i = 0; i < b; ++i) {
          Tensor h = hs.select(i);
          embed(enc.select(i), hidden.select(i),
                assignment.on_disk(1) ? ctx.linear : context_embedder_,
                assignment.on_disk(2) ? x.linear : x_embedder_, h);
        }
      } else if (u >= first_double && u < head) {
        const StreamedUnit disk = assignment.on_disk(u) ? stream(u) : StreamedUnit{};
        for (int64_t i = 0; i < b; ++i) {
          Tensor h = hs.select(i);
          const Tensor silu_row = silu_temb.slice(i, 1);
          const BlockContext ctx{st,       &silu_row,
                                 &rotary,  attention_.get(),
                                 &context, kernels::activation_dtype_for(compute_)};
          if (u < first_single)
            (disk.double_block ? *disk.double_block : *transformer_blocks_[u - first_double])
                .forward(h, ctx);
          else
            (disk.single_block ? *disk.single_block : *single_transformer_blocks_[u - first_single])
                .forward(h, ctx);
        }
      } else if (u == head) {  // norm_out with proj_out (one owner), each held or streamed
        const StreamedUnit norm = assignment.on_disk(head) ? stream(head) : StreamedUnit{};
        const StreamedUnit proj = assignment.on_disk(head + 1) ? stream(head + 1) : StreamedUnit{};
        for (int64_t i = 0; i < b; ++i) {
          Tensor out = sample.select(i);
          output_head(hs.select(i), st, silu_temb.slice(i, 1),
                      assignment.on_disk(head) ? norm.linear : norm_out_,
                      assignment.on_disk(head + 1) ? proj.linear : proj_out_, out);
        }
      }
    }
    if (k + 1 < chain.size()) dist::send_tensor(group, hs, chain[k + 1].rank, kHiddenTag);
  }
  // The output from the head's owner to every rank (each steps its scheduler with it).
  group.broadcast(sample.raw_data(), sample.nbytes(), chain.back().rank);
  return sample;
}

}  // namespace paradiff::models::flux
