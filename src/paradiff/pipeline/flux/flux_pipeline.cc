#include "paradiff/pipeline/flux/flux_pipeline.h"

#include <cmath>
#include <filesystem>

#include "paradiff/core/logging.h"
#include "paradiff/core/random.h"
#include "paradiff/kernels/pointwise.h"
#include "paradiff/models/clip/clip_text_model.h"
#include "paradiff/models/flux/flux_transformer.h"
#include "paradiff/models/t5/t5_encoder_model.h"
#include "paradiff/models/tokenizers/clip_tokenizer.h"
#include "paradiff/models/tokenizers/t5_tokenizer.h"
#include "paradiff/models/vae/autoencoder_kl.h"
#include "paradiff/models/vae/placed_vae_decoder.h"
#include "paradiff/models/weight_source.h"
#include "paradiff/pipeline/component_consistency.h"
#include "paradiff/pipeline/flow_match_euler_scheduler.h"
#include "paradiff/pipeline/flux/flux_latents.h"

namespace paradiff::pipeline {

namespace fs = std::filesystem;

using models::clip::CLIPTextModel;
using models::flux::FluxTransformer2DModel;
using models::t5::T5EncoderModel;
using models::tokenizers::CLIPTokenizer;
using models::tokenizers::T5Tokenizer;
using models::vae::AutoencoderKL;

const std::map<std::string, std::vector<std::string>>& FluxPipeline::required_components() {
  static const std::map<std::string, std::vector<std::string>> required = {
      {"scheduler", {"FlowMatchEulerDiscreteScheduler"}},
      {"text_encoder", {"CLIPTextModel"}},
      {"tokenizer", {"CLIPTokenizer", "CLIPTokenizerFast"}},
      {"text_encoder_2", {"T5EncoderModel"}},
      {"tokenizer_2", {"T5Tokenizer", "T5TokenizerFast"}},
      {"transformer", {"FluxTransformer2DModel"}},
      {"vae", {"AutoencoderKL"}},
  };
  return required;
}

FluxPipeline::FluxPipeline(const std::string& folder, DType compute)
    : FluxPipeline(ModelIndex::load(folder), PipelineRuntime{compute, nullptr, {}}) {}

FluxPipeline::FluxPipeline(const ModelIndex& index, const PipelineRuntime& runtime)
    : DiffusionPipeline(index.folder, runtime) {
  PARADIFF_CHECK(index.class_name == "FluxPipeline", folder_, "/model_index.json names a ",
                 index.class_name, ", not a FluxPipeline");
  index.require(required_components());
  check_weight_files({{"text_encoder", "model"},
                      {"text_encoder_2", "model"},
                      {"transformer", "diffusion_pytorch_model"},
                      {"vae", "diffusion_pytorch_model"}});
  check_components();
}

void FluxPipeline::check_components() {
  // Every config is read (and validated by its loader) before any weight: a folder whose
  // components do not fit together is refused here, naming both files and keys.
  const fs::path dir(folder_);
  const std::string vae_file = (dir / "vae" / "config.json").string();
  const std::string transformer_file = (dir / "transformer" / "config.json").string();
  const std::string clip_file = (dir / "text_encoder" / "config.json").string();
  const std::string t5_file = (dir / "text_encoder_2" / "config.json").string();
  const auto vae = models::vae::AutoencoderKLConfig::load(
      models::model_config_path((dir / "vae").string(), "vae folder"));
  vae_scale_factor_ = vae.downsample_factor();
  const auto transformer = models::flux::FluxTransformerConfig::load(
      models::model_config_path((dir / "transformer").string(), "transformer folder"));
  const auto clip = models::clip::CLIPTextConfig::load(
      models::model_config_path((dir / "text_encoder").string(), "text encoder folder"));
  const auto t5 = models::t5::T5Config::load(
      models::model_config_path((dir / "text_encoder_2").string(), "text encoder folder"));
  FlowMatchEulerDiscreteScheduler::from_pretrained((dir / "scheduler").string());
  check_components_match({t5_file, "d_model", t5.d_model},
                         {transformer_file, "joint_attention_dim", transformer.joint_attention_dim},
                         "T5's hidden states are the transformer's text input");
  check_components_match(
      {clip_file, "hidden_size", clip.hidden_size},
      {transformer_file, "pooled_projection_dim", transformer.pooled_projection_dim},
      "CLIP's pooled output is the transformer's pooled projection input");
  check_components_match({vae_file, "4 x latent_channels", 4 * vae.latent_channels},
                         {transformer_file, "in_channels", transformer.in_channels},
                         "FLUX packs 2x2 latent patches into one token");
  check_components_match({transformer_file, "out_channels", transformer.output_channels()},
                         {transformer_file, "in_channels", transformer.in_channels},
                         "each step's prediction updates the packed latents");
}

std::vector<std::string> FluxPipeline::text_components() const {
  return {"tokenizer", "text_encoder", "tokenizer_2", "text_encoder_2"};
}
std::vector<std::string> FluxPipeline::denoise_components() const {
  return {"scheduler", "transformer"};
}
std::vector<std::string> FluxPipeline::decode_components() const {
  return {"vae"};
}

GenerationOptions FluxPipeline::resolve(GenerationOptions o) const {
  return resolve_common(o, 512, "FluxPipeline");
}

Conditioning FluxPipeline::encode_prompt(const std::vector<std::string>& prompts,
                                         const std::vector<std::string>& negative_prompts,
                                         const GenerationOptions& options) {
  const bool cfg = true_cfg_for(prompts, negative_prompts, options);
  const fs::path dir(folder_);
  const DType compute = runtime_.compute;
  // Under a pipeline-level map each encoder runs on its owner only, which sends its output to
  // the replica; without one this process runs both. An encoder placed by its own map runs on
  // every rank of the group (each its units), and each gets its output; it is left out of the
  // pipeline-level deal.
  const bool clip_placed = !runtime_.text_encoder_device_map.empty();
  const bool t5_placed = !runtime_.text_encoder_2_device_map.empty();
  const bool run_clip = clip_placed || runs_component("text_encoder");
  const bool run_t5 = t5_placed || runs_component("text_encoder_2");
  auto clip_tokenizer = [&] {
    return components_.get<CLIPTokenizer>(
        "tokenizer", [&] { return CLIPTokenizer::from_pretrained((dir / "tokenizer").string()); });
  };
  auto t5_tokenizer = [&] {
    return components_.get<T5Tokenizer>("tokenizer_2", [&] {
      return T5Tokenizer::from_pretrained((dir / "tokenizer_2").string());
    });
  };
  // The tokenizers this rank needs (small files) before either text encoder's weights.
  if (run_clip) clip_tokenizer();
  if (run_t5) t5_tokenizer();
  auto pooled = [&](const std::vector<std::string>& texts) {
    auto tokenizer = clip_tokenizer();
    auto clip = components_.get<CLIPTextModel>("text_encoder", [&] {
      const std::string folder = (dir / "text_encoder").string();
      return clip_placed
                 ? CLIPTextModel::from_pretrained_placed(
                       folder, compute, runtime_.text_encoder_device_map, *runtime_.placement_group,
                       variant_of("text_encoder"))
                 : CLIPTextModel::from_pretrained(folder, compute, variant_of("text_encoder"));
    });
    return clip->forward(tokenizer->encode_batch(texts)).pooler_output;
  };
  auto embeds = [&](const std::vector<std::string>& texts) {
    auto tokenizer = t5_tokenizer();
    auto t5 = components_.get<T5EncoderModel>("text_encoder_2", [&] {
      const std::string folder = (dir / "text_encoder_2").string();
      return t5_placed
                 ? T5EncoderModel::from_pretrained_placed(
                       folder, compute, runtime_.text_encoder_2_device_map,
                       *runtime_.placement_group, variant_of("text_encoder_2"))
                 : T5EncoderModel::from_pretrained(folder, compute, variant_of("text_encoder_2"));
    });
    return t5->forward(tokenizer->encode_batch(texts, options.max_sequence_length));
  };
  Conditioning out;
  auto encode = [&](const std::vector<std::string>& texts, const std::string& prefix) {
    Conditioning pooled_part, embeds_part;
    if (run_clip) pooled_part[prefix + "pooled_prompt_embeds"] = pooled(texts);
    if (run_t5) embeds_part[prefix + "prompt_embeds"] = embeds(texts);
    if (!clip_placed) share_from_owner("text_encoder", pooled_part);
    if (!t5_placed) share_from_owner("text_encoder_2", embeds_part);
    out.merge(pooled_part);
    out.merge(embeds_part);
  };
  encode(prompts, "");
  if (cfg) encode(negative_prompts, "negative_");
  components_.end_stage(text_components());
  return out;
}

Tensor FluxPipeline::prepare_latents(const GenerationOptions& options, int64_t count) {
  PARADIFF_CHECK(count >= 1, "prepare_latents needs a count of at least 1, got ", count);
  const int64_t h = latent_size(options.height, vae_scale_factor_);
  const int64_t w = latent_size(options.width, vae_scale_factor_);
  const auto config = models::flux::FluxTransformerConfig::load(
      (fs::path(folder_) / "transformer" / "config.json").string());
  Generator generator(options.seed);
  // One draw over all rows, as diffusers' randn_tensor with one generator: (count, C, h, w).
  return pack_latents(generator.randn(Shape{count, config.in_channels / 4, h, w}, DType::F32));
}

Tensor FluxPipeline::denoise(const Conditioning& conditioning, Tensor latents,
                             const GenerationOptions& options, const StepCallback& on_step) {
  FlowMatchEulerDiscreteScheduler scheduler = scheduler_for(latents, options);
  auto transformer = components_.get<FluxTransformer2DModel>("transformer", [&] {
    const std::string folder = (fs::path(folder_) / "transformer").string();
    // Placed: this rank holds only the layers the map gives it.
    auto model = !runtime_.transformer_device_map.empty()
                     ? FluxTransformer2DModel::from_pretrained_placed(
                           folder, runtime_.compute, runtime_.transformer_device_map,
                           *runtime_.placement_group, variant_of("transformer"))
                     : FluxTransformer2DModel::from_pretrained(folder, runtime_.compute,
                                                               variant_of("transformer"));
    if (runtime_.mesh) model.enable_parallelism(runtime_.mesh);
    return model;
  });
  const int64_t b = latents.dim(0);
  const int64_t h = latent_size(options.height, vae_scale_factor_);
  const int64_t w = latent_size(options.width, vae_scale_factor_);

  const bool cfg = conditioning.count("negative_prompt_embeds") != 0 &&
                   uses_true_cfg(options, /*has_negative_prompt=*/true);
  models::flux::FluxTransformerInputs in[2];
  for (int branch = 0; branch < (cfg ? 2 : 1); ++branch) {
    const std::string prefix = branch == 0 ? "" : "negative_";
    auto& x = in[branch];
    x.encoder_hidden_states = conditioning_tensor(conditioning, prefix + "prompt_embeds");
    x.pooled_projections = conditioning_tensor(conditioning, prefix + "pooled_prompt_embeds");
    // Embeddings handed in (the staged workflow, the Python package's prompt_embeds) are named
    // as the caller named them, before the transformer sees them as its own inputs.
    const auto& config = transformer->config();
    PARADIFF_CHECK(
        x.encoder_hidden_states.ndim() == 3 && x.encoder_hidden_states.dim(0) == b &&
            x.encoder_hidden_states.dim(2) == config.joint_attention_dim,
        prefix, "prompt_embeds ", x.encoder_hidden_states.describe(), " must be (", b, ", tokens, ",
        config.joint_attention_dim,
        "): one row per image of the latents, the transformer's joint_attention_dim wide");
    PARADIFF_CHECK(x.pooled_projections.ndim() == 2 && x.pooled_projections.dim(0) == b &&
                       x.pooled_projections.dim(1) == config.pooled_projection_dim,
                   prefix, "pooled_prompt_embeds ", x.pooled_projections.describe(), " must be (",
                   b, ", ", config.pooled_projection_dim,
                   "): one row per image, the transformer's pooled_projection_dim wide");
    x.img_ids = latent_image_ids(h / 2, w / 2);
    x.txt_ids = Tensor::zeros({x.encoder_hidden_states.dim(1), 3}, DType::F32);
    if (transformer->config().guidance_embeds) x.guidance = filled(b, options.guidance_scale);
  }
  const TrueClassifierFreeGuidance true_cfg(options.true_cfg_scale);
  const PredictFn predict = [&](const Tensor& current, float t, Branch branch) {
    auto& x = in[branch == Branch::Conditional ? 0 : 1];
    x.timestep = filled(b, t);
    x.hidden_states = current;
    return transformer->forward(x);
  };
  return run_denoise_loop(scheduler, std::move(latents), predict, cfg ? &true_cfg : nullptr,
                          on_step);
}

Tensor FluxPipeline::decode(const Tensor& latents, const GenerationOptions& options) {
  if (!runtime_.vae_device_map.empty()) {
    // Placed: this rank holds only its decoder units; decode is collective over the group.
    auto vae = components_.get<models::vae::PlacedVaeDecoder>("vae", [&] {
      return models::vae::PlacedVaeDecoder::from_pretrained(
          (fs::path(folder_) / "vae").string(), runtime_.vae_device_map, *runtime_.placement_group,
          variant_of("vae"));
    });
    const int64_t h = latent_size(options.height, vae_scale_factor_);
    const int64_t w = latent_size(options.width, vae_scale_factor_);
    Tensor images = vae->decode(vae->unscale_latents(unpack_latents(latents, h, w)));
    components_.end_stage(decode_components());
    kernels::scale_shift_clamp(images, 0.5f, 0.5f, 0.0f, 1.0f, images);
    return images;
  }
  auto vae = components_.get<AutoencoderKL>("vae", [&] {
    return AutoencoderKL::from_pretrained((fs::path(folder_) / "vae").string(),
                                          models::vae::VaeParts::DecoderOnly, variant_of("vae"));
  });
  const int64_t h = latent_size(options.height, vae_scale_factor_);
  const int64_t w = latent_size(options.width, vae_scale_factor_);
  Tensor images = vae->decode(vae->unscale_latents(unpack_latents(latents, h, w)));
  components_.end_stage(decode_components());
  // diffusers' postprocess: (x / 2 + 0.5).clamp(0, 1).
  kernels::scale_shift_clamp(images, 0.5f, 0.5f, 0.0f, 1.0f, images);
  return images;
}

}  // namespace paradiff::pipeline
