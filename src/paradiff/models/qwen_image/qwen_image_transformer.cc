#include "paradiff/models/qwen_image/qwen_image_transformer.h"

#include <filesystem>

#include "paradiff/core/logging.h"
#include "paradiff/io/checkpoint.h"
#include "paradiff/io/safetensors.h"
#include "paradiff/kernels/activations.h"
#include "paradiff/kernels/layer_norm.h"
#include "paradiff/kernels/rms_norm.h"
#include "paradiff/parallel/context_parallel_attention.h"

namespace paradiff::models::qwen_image {

namespace {

// An input as F32 (diffusers casts inside forward too), or an error naming it.
Tensor as_f32(const Tensor& t, const char* name) {
  PARADIFF_CHECK(t.defined(), "transformer input '", name, "' is missing");
  PARADIFF_CHECK(is_floating(t.dtype()) || t.dtype() == DType::I64, "transformer input '", name,
                 "' must be numeric, got ", t.describe());
  return t.as(DType::F32);
}

// Indices of the valid text tokens of batch element `b` (all of them without a mask).
std::vector<int64_t> valid_text_tokens(const Tensor& mask, int64_t b, int64_t text) {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(text));
  const float* m = mask.defined() ? mask.data<float>() + b * text : nullptr;
  for (int64_t j = 0; j < text; ++j)
    if (m == nullptr || m[j] != 0.0f) out.push_back(j);
  return out;
}

}  // namespace

QwenImageTransformer2DModel::QwenImageTransformer2DModel(const QwenImageTransformerConfig& config,
                                                         ModuleLoader& loader)
    : config_(config),
      compute_(loader.compute_dtype()),
      attention_(parallel::make_local_attention()) {
  config_.validate("transformer config");
  const int64_t c = config_.inner_dim();
  img_in_ = loader.linear("img_in", config_.in_channels, c);
  txt_norm_ = loader.parameter("txt_norm.weight", Shape{config_.joint_attention_dim});
  txt_in_ = loader.linear("txt_in", config_.joint_attention_dim, c);
  time_text_embed_ = QwenTimestepProjEmbeddings(loader, "time_text_embed", c);
  transformer_blocks_.reserve(config_.num_layers);
  for (int64_t i = 0; i < config_.num_layers; ++i)
    transformer_blocks_.emplace_back(loader, str_cat("transformer_blocks.", i), config_);
  norm_out_ = loader.linear("norm_out.linear", c, 2 * c);
  proj_out_ = loader.linear("proj_out", c, config_.output_channels());
  loader.finish();
}

QwenImageTransformer2DModel QwenImageTransformer2DModel::from_pretrained(
    const std::string& folder, DType compute, const std::string& variant) {
  const auto config =
      QwenImageTransformerConfig::load(model_config_path(folder, "transformer folder"));
  const CheckpointWeights weights(
      Checkpoint::open_folder(folder, "diffusion_pytorch_model", variant));
  ModuleLoader loader(weights, compute);
  return QwenImageTransformer2DModel(config, loader);
}

QwenImageTransformer2DModel QwenImageTransformer2DModel::from_pretrained(
    const std::string& folder, DType compute, const parallel::ParallelConfig& parallel_config,
    dist::Communicator& world) {
  auto mesh = std::make_shared<parallel::DeviceMesh>(world, parallel_config);
  auto model = from_pretrained(folder, compute);
  model.enable_parallelism(std::move(mesh));
  return model;
}

QwenImageTransformer2DModel QwenImageTransformer2DModel::with_random_weights(
    const QwenImageTransformerConfig& config, DType compute, uint64_t seed) {
  ModuleLoader loader(RandomInit{seed}, compute);
  return QwenImageTransformer2DModel(config, loader);
}

void QwenImageTransformer2DModel::set_attention_backend(
    std::shared_ptr<parallel::AttentionBackend> backend) {
  PARADIFF_CHECK(backend != nullptr, "attention backend must not be null");
  attention_ = std::move(backend);
}

void QwenImageTransformer2DModel::enable_parallelism(const parallel::ContextParallelConfig& config,
                                                     dist::Communicator& world) {
  enable_parallelism(std::make_shared<parallel::DeviceMesh>(world, config));
}

void QwenImageTransformer2DModel::enable_parallelism(std::shared_ptr<parallel::DeviceMesh> mesh) {
  PARADIFF_CHECK(mesh != nullptr, "enable_parallelism needs a device mesh");
  // A mesh without context parallelism (data or cfg parallel only) leaves forwards local.
  if (mesh->context_parallel_enabled())
    attention_ = std::make_shared<parallel::ContextParallelAttention>(*mesh);
  mesh_ = std::move(mesh);
}

const parallel::ContextParallelPlan& QwenImageTransformer2DModel::context_parallel_plan() {
  static const parallel::ContextParallelPlan plan{{{"hidden_states", 1, true},
                                                   {"encoder_hidden_states", 1, true},
                                                   {"image_positions", 0},
                                                   {"text_positions", 0}},
                                                  {{"sample", 1, "hidden_states"}}};
  return plan;
}

void QwenImageTransformer2DModel::validate_inputs(const QwenImageTransformerInputs& in) const {
  const auto& c = config_;
  const Tensor hidden = as_f32(in.hidden_states, "hidden_states");
  PARADIFF_CHECK(hidden.ndim() == 3 && hidden.dim(2) == c.in_channels,
                 "hidden_states must be (B, S_img, ", c.in_channels, "), got ", hidden.describe());
  const int64_t b = hidden.dim(0), si = hidden.dim(1);
  PARADIFF_CHECK(b >= 1 && si >= 1,
                 "hidden_states has no batch element or no image token: ", hidden.describe());
  const Tensor enc = as_f32(in.encoder_hidden_states, "encoder_hidden_states");
  PARADIFF_CHECK(enc.ndim() == 3 && enc.dim(0) == b && enc.dim(2) == c.joint_attention_dim,
                 "encoder_hidden_states must be (", b, ", S_txt, ", c.joint_attention_dim,
                 "), got ", enc.describe());
  const int64_t st = enc.dim(1);
  if (in.encoder_hidden_states_mask.defined())
    as_f32(in.encoder_hidden_states_mask, "encoder_hidden_states_mask")
        .expect_shape(Shape{b, st}, "encoder_hidden_states_mask");
  as_f32(in.timestep, "timestep").expect_shape(Shape{b}, "timestep");

  PARADIFF_CHECK(static_cast<int64_t>(in.img_shapes.size()) == b, "img_shapes must have one entry ",
                 "per batch element (", b, "), got ", in.img_shapes.size());
  const auto& first = in.img_shapes.front();
  PARADIFF_CHECK(!first.empty(), "img_shapes[0] lists no image");
  int64_t tokens = 0;
  for (const auto& s : first) {
    PARADIFF_CHECK(s.frame >= 1 && s.height >= 1 && s.width >= 1,
                   "img_shapes entries must be positive (frame, height, width), got (", s.frame,
                   ", ", s.height, ", ", s.width, ")");
    tokens += s.tokens();
  }
  PARADIFF_CHECK(tokens == si, "img_shapes[0] describes ", tokens,
                 " image tokens, but hidden_states has ", si);
  PARADIFF_CHECK(text_position_start(first) + st <= kRopePositions, "text length ", st,
                 " starting at rotary position ", text_position_start(first), " exceeds the ",
                 kRopePositions, " positions of diffusers' rotary table");
  image_positions(first);  // checks the image positions' range

  if (!in.txt_seq_lens.empty()) {
    PARADIFF_CHECK(static_cast<int64_t>(in.txt_seq_lens.size()) == b,
                   "txt_seq_lens must have one entry per batch element (", b, "), got ",
                   in.txt_seq_lens.size());
    for (int64_t len : in.txt_seq_lens)
      PARADIFF_CHECK(len >= 0 && len <= st, "txt_seq_lens entry ", len, " is outside [0, ", st,
                     "]");
  }
}

Tensor QwenImageTransformer2DModel::forward(const QwenImageTransformerInputs& in) const {
  validate_inputs(in);
  for (size_t i = 1; i < in.img_shapes.size(); ++i)
    if (in.img_shapes[i] != in.img_shapes[0]) {
      log_warning(
          "img_shapes differ between batch elements; as in diffusers, the first "
          "element's shapes set the positions of every element");
      break;
    }
  if (!in.txt_seq_lens.empty())
    log_warning(
        "txt_seq_lens is ignored (as in diffusers since it was deprecated): the text "
        "positions follow the padded text length");

  const Tensor hidden = as_f32(in.hidden_states, "hidden_states");
  const Tensor enc = as_f32(in.encoder_hidden_states, "encoder_hidden_states");
  const Tensor timestep = as_f32(in.timestep, "timestep");
  const Tensor mask = in.encoder_hidden_states_mask.defined()
                          ? as_f32(in.encoder_hidden_states_mask, "encoder_hidden_states_mask")
                          : Tensor();
  const int64_t b = hidden.dim(0), si = hidden.dim(1), st = enc.dim(1);
  const auto& shapes = in.img_shapes.front();
  const Tensor image_pos = image_positions(shapes);
  const int64_t text_start = text_position_start(shapes);

  Tensor sample = Tensor::empty({b, si, config_.output_channels()}, DType::F32);
  for (int64_t i = 0; i < b; ++i) {
    // Only the valid text tokens take part (see the header), at their padded positions.
    const auto valid = valid_text_tokens(mask, i, st);
    const auto n = static_cast<int64_t>(valid.size());
    Tensor text = enc.select(i).reshape({1, st, config_.joint_attention_dim});
    if (n != st) {
      text = Tensor::empty({1, n, config_.joint_attention_dim}, DType::F32);
      for (int64_t j = 0; j < n; ++j)
        text.select(0).slice(j, 1).copy_from(enc.select(i).slice(valid[j], 1));
    }
    const parallel::NamedTensors named{
        {"hidden_states", hidden.select(i).reshape({1, si, config_.in_channels})},
        {"encoder_hidden_states", text},
        {"timestep", timestep.slice(i, 1)},
        {"image_positions", image_pos},
        {"text_positions", text_positions(valid, text_start)}};
    Tensor out = sample.select(i);
    if (!parallelism_enabled()) {
      out.copy_from(forward_local(named, parallel::ForwardContext{}).select(0));
      continue;
    }
    const auto outputs = parallel::context_parallel_forward(
        context_parallel_plan(), mesh_->context_parallel(), named,
        [this](const parallel::NamedTensors& local, const parallel::ForwardContext& context) {
          return parallel::NamedTensors{{"sample", forward_local(local, context)}};
        });
    out.copy_from(outputs.at("sample").select(0));
  }
  return sample;
}

Tensor QwenImageTransformer2DModel::forward_local(const parallel::NamedTensors& local,
                                                  const parallel::ForwardContext& context) const {
  const auto& cfg = config_;
  const Tensor hidden = local.at("hidden_states").select(0);       // (n_img, in)
  const Tensor enc = local.at("encoder_hidden_states").select(0);  // (n_txt, joint)
  const int64_t si = hidden.dim(0), st = enc.dim(0), s = st + si, c = cfg.inner_dim();
  const DType adt = compute_;

  const Tensor temb = time_text_embed_.forward(local.at("timestep"));
  Tensor silu_temb = Tensor::empty(temb.shape(), DType::F32);
  kernels::silu(temb, silu_temb);

  // Rotary tables for this rank's rows [text, image].
  Tensor positions = Tensor::empty({s, 3}, DType::F32);
  positions.slice(0, st).copy_from(local.at("text_positions"));
  positions.slice(st, si).copy_from(local.at("image_positions"));
  const RotaryTables rotary = qwen_rotary_tables(positions, cfg.axes_dims_rope);

  Tensor h = Tensor::empty({s, c}, DType::F32);
  Tensor h_txt = h.slice(0, st), h_img = h.slice(st, si);
  if (st > 0) {
    // txt_norm (RMSNorm, eps 1e-6) then txt_in.
    Tensor normed = Tensor::empty(enc.shape(), adt);
    kernels::rms_norm(enc, txt_norm_, 1e-6f, normed);
    txt_in_.forward(normed, h_txt);
  }
  img_in_.forward(hidden, h_img);

  const BlockContext ctx{st, &silu_temb, &rotary, attention_.get(), &context, adt};
  for (const auto& block : transformer_blocks_) block.forward(h, ctx);

  // AdaLayerNormContinuous: the embedding's halves are (scale, shift), in that order.
  const Tensor emb = norm_out_.forward(silu_temb).reshape({2, c});
  Tensor normed = Tensor::empty({1, si, c}, adt);
  kernels::layer_norm_modulate(h_img.reshape({1, si, c}), emb.slice(1, 1), emb.slice(0, 1), 1e-6f,
                               normed);
  Tensor sample = Tensor::empty({1, si, cfg.output_channels()}, DType::F32);
  Tensor out = sample.select(0);
  proj_out_.forward(normed.reshape({si, c}), out);
  return sample;
}

QwenImageTransformerInputs QwenImageTransformerInputs::load(const std::string& safetensors_path) {
  const auto file = SafetensorsFile::open(safetensors_path);
  QwenImageTransformerInputs in;
  auto read = [&](const char* name) {
    return file.contains(name) ? file.read(name, DType::F32) : Tensor();
  };
  in.hidden_states = read("hidden_states");
  in.encoder_hidden_states = read("encoder_hidden_states");
  in.encoder_hidden_states_mask = read("encoder_hidden_states_mask");
  in.timestep = read("timestep");
  const Tensor shapes = read("img_shapes");
  PARADIFF_CHECK(shapes.defined(), safetensors_path, ": no 'img_shapes' tensor");
  PARADIFF_CHECK((shapes.ndim() == 2 || shapes.ndim() == 3) && shapes.dim(shapes.ndim() - 1) == 3,
                 safetensors_path, ": 'img_shapes' must be (B, 3) or (B, N, 3), got ",
                 shapes.describe());
  const int64_t b = shapes.dim(0), n = shapes.ndim() == 3 ? shapes.dim(1) : 1;
  const float* v = shapes.data<float>();
  in.img_shapes.resize(static_cast<size_t>(b));
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const float* e = v + (i * n + j) * 3;
      for (int k = 0; k < 3; ++k)
        PARADIFF_CHECK(e[k] == static_cast<float>(static_cast<int64_t>(e[k])), safetensors_path,
                       ": 'img_shapes' holds a non-integer ", e[k]);
      in.img_shapes[i].push_back(
          {static_cast<int64_t>(e[0]), static_cast<int64_t>(e[1]), static_cast<int64_t>(e[2])});
    }
  const Tensor lens = read("txt_seq_lens");
  if (lens.defined())
    for (int64_t i = 0; i < lens.numel(); ++i)
      in.txt_seq_lens.push_back(static_cast<int64_t>(lens.data<float>()[i]));
  return in;
}

}  // namespace paradiff::models::qwen_image
