#include "paradiff/models/flux/flux_transformer.h"

#include <filesystem>

#include "paradiff/core/logging.h"
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
    : config_(config),
      compute_(loader.compute_dtype()),
      attention_(parallel::make_local_attention()) {
  config_.validate("transformer config");
  const int64_t c = config_.inner_dim();
  x_embedder_ = loader.linear("x_embedder", config_.in_channels, c);
  context_embedder_ = loader.linear("context_embedder", config_.joint_attention_dim, c);
  time_text_embed_ = FluxTimeTextEmbedding(loader, "time_text_embed", c,
                                           config_.pooled_projection_dim, config_.guidance_embeds);
  transformer_blocks_.reserve(config_.num_layers);
  for (int64_t i = 0; i < config_.num_layers; ++i)
    transformer_blocks_.emplace_back(loader, str_cat("transformer_blocks.", i), config_);
  single_transformer_blocks_.reserve(config_.num_single_layers);
  for (int64_t i = 0; i < config_.num_single_layers; ++i)
    single_transformer_blocks_.emplace_back(loader, str_cat("single_transformer_blocks.", i),
                                            config_);
  norm_out_ = loader.linear("norm_out.linear", c, 2 * c);
  proj_out_ = loader.linear("proj_out", c, config_.output_channels());
  loader.finish();
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
  if (!parallelism_enabled()) return forward_local(in, parallel::ForwardContext{});
  const auto outputs = parallel::context_parallel_forward(
      context_parallel_plan(), mesh_->context_parallel(), in.to_named(),
      [this](const parallel::NamedTensors& local, const parallel::ForwardContext& context) {
        return parallel::NamedTensors{
            {"sample", forward_local(FluxTransformerInputs::from_named(local), context)}};
      });
  return outputs.at("sample");
}

Tensor FluxTransformer2DModel::forward_local(const FluxTransformerInputs& in,
                                             const parallel::ForwardContext& context) const {
  validate_inputs(in);
  const auto& cfg = config_;
  const Tensor hidden = as_f32(in.hidden_states, "hidden_states");
  const Tensor enc = as_f32(in.encoder_hidden_states, "encoder_hidden_states");
  const int64_t b = hidden.dim(0), si = hidden.dim(1), st = enc.dim(1), s = st + si;
  const int64_t c = cfg.inner_dim();
  const DType adt = compute_;

  // temb for the whole batch; timestep and guidance are scaled by 1000 inside the model.
  auto times_1000 = [](const Tensor& t, const char* name) {
    const Tensor f32 = as_f32(t, name);
    Tensor out = Tensor::empty(f32.shape(), DType::F32);
    kernels::scale(f32, 1000.0f, out);
    return out;
  };
  const Tensor temb =
      time_text_embed_.forward(times_1000(in.timestep, "timestep"),
                               cfg.guidance_embeds ? times_1000(in.guidance, "guidance") : Tensor(),
                               as_f32(in.pooled_projections, "pooled_projections"));
  Tensor silu_temb = Tensor::empty(temb.shape(), DType::F32);
  kernels::silu(temb, silu_temb);

  // Rotary tables for the joint sequence [text, image].
  const Tensor txt_ids = ids_2d(in.txt_ids, "txt_ids"), img_ids = ids_2d(in.img_ids, "img_ids");
  Tensor ids = Tensor::empty({s, txt_ids.dim(1)}, DType::F32);
  ids.slice(0, st).copy_from(txt_ids);
  ids.slice(st, si).copy_from(img_ids);
  const RotaryTables rotary = flux_rotary_tables(ids, cfg.axes_dims_rope);

  Tensor sample = Tensor::empty({b, si, cfg.output_channels()}, DType::F32);
  // One batch element at a time: every row range of h is then a contiguous view.
  for (int64_t i = 0; i < b; ++i) {
    Tensor h = Tensor::empty({s, c}, DType::F32);
    Tensor h_txt = h.slice(0, st), h_img = h.slice(st, si);
    context_embedder_.forward(enc.select(i), h_txt);
    x_embedder_.forward(hidden.select(i), h_img);

    const Tensor silu_row = silu_temb.slice(i, 1);
    const BlockContext ctx{st, &silu_row, &rotary, attention_.get(), &context, adt};
    for (const auto& block : transformer_blocks_) block.forward(h, ctx);
    for (const auto& block : single_transformer_blocks_) block.forward(h, ctx);

    // AdaLayerNormContinuous: the embedding's halves are (scale, shift), in that order.
    const Tensor emb = norm_out_.forward(silu_row).reshape({2, c});
    Tensor normed = Tensor::empty({1, si, c}, adt);
    kernels::layer_norm_modulate(h.slice(st, si).reshape({1, si, c}), emb.slice(1, 1),
                                 emb.slice(0, 1), 1e-6f, normed);
    Tensor out = sample.select(i);
    proj_out_.forward(normed.reshape({si, c}), out);
  }
  return sample;
}

}  // namespace paradiff::models::flux
