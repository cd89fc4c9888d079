#include "paradiff/models/qwen_image/qwen_image_transformer.h"

#include <filesystem>

#include "paradiff/core/logging.h"
#include "paradiff/dist/tensor_broadcast.h"
#include "paradiff/dist/tensor_transfer.h"
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
    : QwenImageTransformer2DModel(config, loader, nullptr) {}

QwenImageTransformer2DModel::QwenImageTransformer2DModel(
    const QwenImageTransformerConfig& config, ModuleLoader& loader,
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
  if (mine("img_in")) img_in_ = loader.linear("img_in", config_.in_channels, c);
  if (mine("txt_norm"))
    txt_norm_ = loader.parameter("txt_norm.weight", Shape{config_.joint_attention_dim});
  if (mine("txt_in")) txt_in_ = loader.linear("txt_in", config_.joint_attention_dim, c);
  if (mine("time_text_embed"))
    time_text_embed_ = QwenTimestepProjEmbeddings(loader, "time_text_embed", c);
  transformer_blocks_.resize(static_cast<size_t>(config_.num_layers));
  for (int64_t i = 0; i < config_.num_layers; ++i) {
    const std::string name = str_cat("transformer_blocks.", i);
    WeightBlockScope block(static_cast<int>(i));
    if (mine(name)) transformer_blocks_[static_cast<size_t>(i)].emplace(loader, name, config_);
  }
  if (mine("norm_out")) norm_out_ = loader.linear("norm_out.linear", c, 2 * c);
  if (mine("proj_out")) proj_out_ = loader.linear("proj_out", c, config_.output_channels());
  loader.finish();
  parameter_bytes_ = loader.bytes_bound();
}

std::vector<std::string> QwenImageTransformer2DModel::execution_units(
    const QwenImageTransformerConfig& config) {
  std::vector<std::string> units{"time_text_embed", "txt_norm", "txt_in", "img_in"};
  for (int64_t i = 0; i < config.num_layers; ++i)
    units.push_back(str_cat("transformer_blocks.", i));
  units.push_back("norm_out");
  units.push_back("proj_out");
  return units;
}

QwenImageTransformer2DModel QwenImageTransformer2DModel::from_pretrained_placed(
    const std::string& folder, DType compute, const parallel::DeviceMap& map,
    dist::Communicator& group, const std::string& variant) {
  const auto config =
      QwenImageTransformerConfig::load(model_config_path(folder, "transformer folder"));
  auto weights = std::make_shared<const CheckpointWeights>(
      Checkpoint::open_folder(folder, "diffusion_pytorch_model", variant));
  auto placement =
      place_transformer_units(map, execution_units(config), 3, weights->names(), group);
  const IgnoringWeights mine(
      *weights, [p = placement](const std::string& name) { return !p->binds_tensor(name); });
  ModuleLoader loader(mine, compute);
  QwenImageTransformer2DModel model(config, loader, std::move(placement));
  model.disk_source_ = std::move(weights);
  return model;
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
    // Under a placement the stages run in turn; with context parallelism as well, each stage is
    // a ring/Ulysses group and every rank hands its share of the tokens to the rank with the same
    // context-parallel index in the next stage (the stage communicator links exactly those).
    auto run = [this](const parallel::NamedTensors& local,
                      const parallel::ForwardContext& context) {
      return placement_ ? forward_placed(local, context) : forward_local(local, context);
    };
    if (!parallelism_enabled()) {
      out.copy_from(run(named, parallel::ForwardContext{}).select(0));
      continue;
    }
    const auto outputs = parallel::context_parallel_forward(
        context_parallel_plan(), mesh_->context_parallel(), named,
        [&run](const parallel::NamedTensors& local, const parallel::ForwardContext& context) {
          return parallel::NamedTensors{{"sample", run(local, context)}};
        });
    out.copy_from(outputs.at("sample").select(0));
  }
  return sample;
}

Tensor QwenImageTransformer2DModel::conditioning(
    const parallel::NamedTensors& local, const QwenTimestepProjEmbeddings& time_text_embed) const {
  const Tensor temb = time_text_embed.forward(local.at("timestep"));
  Tensor silu_temb = Tensor::empty(temb.shape(), DType::F32);
  kernels::silu(temb, silu_temb);
  return silu_temb;
}

RotaryTables QwenImageTransformer2DModel::rotary_tables(const parallel::NamedTensors& local) const {
  const Tensor& text = local.at("text_positions");
  const Tensor& image = local.at("image_positions");
  const int64_t st = text.dim(0), si = image.dim(0);
  Tensor positions = Tensor::empty({st + si, 3}, DType::F32);
  positions.slice(0, st).copy_from(text);
  positions.slice(st, si).copy_from(image);
  return qwen_rotary_tables(positions, config_.axes_dims_rope);
}

void QwenImageTransformer2DModel::embed(const parallel::NamedTensors& local, const Tensor& txt_norm,
                                        const kernels::Linear& txt_in,
                                        const kernels::Linear& img_in, Tensor& h) const {
  const Tensor hidden = local.at("hidden_states").select(0);       // (n_img, in)
  const Tensor enc = local.at("encoder_hidden_states").select(0);  // (n_txt, joint)
  const int64_t si = hidden.dim(0), st = enc.dim(0);
  Tensor h_txt = h.slice(0, st), h_img = h.slice(st, si);
  if (st > 0) {
    // txt_norm (RMSNorm, eps 1e-6) then txt_in.
    Tensor normed = Tensor::empty(enc.shape(), compute_);
    kernels::rms_norm(enc, txt_norm, 1e-6f, normed);
    txt_in.forward(normed, h_txt);
  }
  img_in.forward(hidden, h_img);
}

Tensor QwenImageTransformer2DModel::output_head(const Tensor& h, int64_t text_tokens,
                                                const Tensor& silu_temb,
                                                const kernels::Linear& norm_out,
                                                const kernels::Linear& proj_out) const {
  // AdaLayerNormContinuous: the embedding's halves are (scale, shift), in that order.
  const int64_t c = config_.inner_dim(), si = h.dim(0) - text_tokens;
  const Tensor emb = norm_out.forward(silu_temb).reshape({2, c});
  Tensor normed = Tensor::empty({1, si, c}, kernels::activation_dtype_for(compute_));
  kernels::layer_norm_modulate(h.slice(text_tokens, si).reshape({1, si, c}), emb.slice(1, 1),
                               emb.slice(0, 1), 1e-6f, normed);
  Tensor sample = Tensor::empty({1, si, config_.output_channels()}, DType::F32);
  Tensor out = sample.select(0);
  proj_out.forward(normed.reshape({si, c}), out);
  return sample;
}

Tensor QwenImageTransformer2DModel::forward_local(const parallel::NamedTensors& local,
                                                  const parallel::ForwardContext& context) const {
  const int64_t si = local.at("hidden_states").dim(1);
  const int64_t st = local.at("encoder_hidden_states").dim(1);
  const Tensor silu_temb = conditioning(local, time_text_embed_);
  const RotaryTables rotary = rotary_tables(local);
  Tensor h = Tensor::empty({st + si, config_.inner_dim()}, DType::F32);
  embed(local, txt_norm_, txt_in_, img_in_, h);
  const BlockContext ctx{
      st, &silu_temb, &rotary, attention_.get(), &context, kernels::activation_dtype_for(compute_)};
  int index = 0;
  for (const auto& block : transformer_blocks_) {
    if (block_weights_) block_weights_->before_block(index++);
    block->forward(h, ctx);
  }
  return output_head(h, st, silu_temb, norm_out_, proj_out_);
}

QwenImageTransformer2DModel::StreamedUnit QwenImageTransformer2DModel::bind_streamed(
    const std::string& unit, const WeightSource& source) const {
  ModuleLoader loader(source, compute_);
  StreamedUnit out;
  const int64_t c = config_.inner_dim();
  if (unit.rfind("transformer_blocks.", 0) == 0)
    out.block.emplace(loader, unit, config_);
  else if (unit == "time_text_embed")
    out.time_text_embed = QwenTimestepProjEmbeddings(loader, unit, c);
  else if (unit == "txt_norm")
    out.weight = loader.parameter("txt_norm.weight", Shape{config_.joint_attention_dim});
  else if (unit == "txt_in")
    out.linear = loader.linear(unit, config_.joint_attention_dim, c);
  else if (unit == "img_in")
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

Tensor QwenImageTransformer2DModel::forward_placed(const parallel::NamedTensors& local,
                                                   const parallel::ForwardContext& context) const {
  constexpr int kHiddenTag = 0x504c;  // "PL": hidden states from one stage owner to the next
  const auto& assignment = placement_->assignment();
  dist::Communicator& group = placement_->group();
  const int rank = group.rank();
  const int64_t si = local.at("hidden_states").dim(1);
  const int64_t st = local.at("encoder_hidden_states").dim(1);

  // The "disk" units this rank runs, from time_text_embed on, each read ahead while the unit
  // before it computes.
  UnitStreamer streamer(assignment, rank, 0, *disk_source_, compute_);
  auto stream = [&](size_t u) { return bind_streamed(assignment.units()[u], streamer.next(u)); };

  // Conditioning: SiLU(temb) from its owner to every rank; the RoPE tables from the positions
  // every rank holds.
  const int temb_owner = assignment.owner("time_text_embed");
  Tensor silu_temb;
  if (rank == temb_owner) {
    const StreamedUnit disk = assignment.on_disk(0) ? stream(0) : StreamedUnit{};
    silu_temb =
        conditioning(local, assignment.on_disk(0) ? disk.time_text_embed : time_text_embed_);
  }
  dist::broadcast_tensor(group, silu_temb, temb_owner);
  const RotaryTables rotary = rotary_tables(local);

  // The chain of units that carry the hidden states (time_text_embed, unit 0, is not in it):
  // txt_norm, txt_in, img_in (1-3), the blocks, norm_out and proj_out.
  const std::vector<parallel::Stage> chain = hidden_state_chain(assignment, 1);
  const size_t first_block = 4, head = first_block + transformer_blocks_.size();

  Tensor h;  // (n_txt + n_img, C) F32: the joint hidden states
  Tensor sample = Tensor::empty({1, si, config_.output_channels()}, DType::F32);
  for (size_t k = 0; k < chain.size(); ++k) {
    const parallel::Stage& stage = chain[k];
    if (stage.rank != rank) continue;
    if (k > 0) h = dist::receive_tensor(group, chain[k - 1].rank, kHiddenTag);
    for (size_t u = stage.first; u < stage.first + stage.count; ++u) {
      if (u == 1) {  // txt_norm with txt_in and img_in (one owner): start the joint states
        const StreamedUnit norm = assignment.on_disk(1) ? stream(1) : StreamedUnit{};
        const StreamedUnit txt = assignment.on_disk(2) ? stream(2) : StreamedUnit{};
        const StreamedUnit img = assignment.on_disk(3) ? stream(3) : StreamedUnit{};
        h = Tensor::empty({st + si, config_.inner_dim()}, DType::F32);
        embed(local, assignment.on_disk(1) ? norm.weight : txt_norm_,
              assignment.on_disk(2) ? txt.linear : txt_in_,
              assignment.on_disk(3) ? img.linear : img_in_, h);
      } else if (u >= first_block && u < head) {
        const StreamedUnit disk = assignment.on_disk(u) ? stream(u) : StreamedUnit{};
        const BlockContext ctx{st,       &silu_temb,
                               &rotary,  attention_.get(),
                               &context, kernels::activation_dtype_for(compute_)};
        (disk.block ? *disk.block : *transformer_blocks_[u - first_block]).forward(h, ctx);
      } else if (u == head) {  // norm_out with proj_out (one owner), each held or streamed
        const StreamedUnit norm = assignment.on_disk(head) ? stream(head) : StreamedUnit{};
        const StreamedUnit proj = assignment.on_disk(head + 1) ? stream(head + 1) : StreamedUnit{};
        sample = output_head(h, st, silu_temb, assignment.on_disk(head) ? norm.linear : norm_out_,
                             assignment.on_disk(head + 1) ? proj.linear : proj_out_);
      }
    }
    if (k + 1 < chain.size()) dist::send_tensor(group, h, chain[k + 1].rank, kHiddenTag);
  }
  // The output from the head's owner to every rank (each steps its scheduler with it).
  group.broadcast(sample.raw_data(), sample.nbytes(), chain.back().rank);
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
