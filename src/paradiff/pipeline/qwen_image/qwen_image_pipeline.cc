#include "paradiff/pipeline/qwen_image/qwen_image_pipeline.h"

#include <cmath>
#include <filesystem>

#include "paradiff/core/logging.h"
#include "paradiff/core/random.h"
#include "paradiff/kernels/cfg_norm_rescale.h"
#include "paradiff/kernels/pointwise.h"
#include "paradiff/models/qwen2_5_vl/qwen2_5_vl_text_model.h"
#include "paradiff/models/qwen2_5_vl/qwen_image_prompt_embeds.h"
#include "paradiff/models/qwen_image/qwen_image_transformer.h"
#include "paradiff/models/tokenizers/qwen2_tokenizer.h"
#include "paradiff/models/vae_qwen_image/autoencoder_kl_qwen_image.h"
#include "paradiff/models/vae_qwen_image/placed_qwen_image_vae_decoder.h"
#include "paradiff/models/weight_source.h"
#include "paradiff/pipeline/component_consistency.h"
#include "paradiff/pipeline/flow_match_euler_scheduler.h"
#include "paradiff/pipeline/flux/flux_latents.h"

namespace paradiff::pipeline {

namespace fs = std::filesystem;

using models::qwen2_5_vl::Qwen2_5_VLTextModel;
using models::qwen_image::QwenImageTransformer2DModel;
using models::qwen_image::QwenImageTransformerConfig;
using models::tokenizers::Qwen2Tokenizer;
using models::vae_qwen_image::AutoencoderKLQwenImage;
using models::vae_qwen_image::AutoencoderKLQwenImageConfig;

Tensor NormRescaledTrueCfgGuidance::combine(const Tensor& conditional,
                                            const Tensor& unconditional) const {
  Tensor out = Tensor::empty(conditional.shape(), DType::F32);
  kernels::cfg_norm_rescale(conditional, unconditional, scale_, out);
  return out;
}

const std::map<std::string, std::vector<std::string>>& QwenImagePipeline::required_components() {
  static const std::map<std::string, std::vector<std::string>> required = {
      {"scheduler", {"FlowMatchEulerDiscreteScheduler"}},
      {"text_encoder", {"Qwen2_5_VLForConditionalGeneration"}},
      {"tokenizer", {"Qwen2Tokenizer", "Qwen2TokenizerFast"}},
      {"transformer", {"QwenImageTransformer2DModel"}},
      {"vae", {"AutoencoderKLQwenImage"}},
  };
  return required;
}

QwenImagePipeline::QwenImagePipeline(const std::string& folder, DType compute)
    : QwenImagePipeline(ModelIndex::load(folder), PipelineRuntime{compute, nullptr, {}}) {}

QwenImagePipeline::QwenImagePipeline(const ModelIndex& index, const PipelineRuntime& runtime)
    : DiffusionPipeline(index.folder, runtime) {
  PARADIFF_CHECK(index.class_name == "QwenImagePipeline", folder_, "/model_index.json names a ",
                 index.class_name, ", not a QwenImagePipeline");
  index.require(required_components());
  check_weight_files({{"text_encoder", "model"},
                      {"transformer", "diffusion_pytorch_model"},
                      {"vae", "diffusion_pytorch_model"}});
  const fs::path dir(folder_);
  const std::string vae_file = (dir / "vae" / "config.json").string();
  const auto vae = AutoencoderKLQwenImageConfig::load(
      models::model_config_path((dir / "vae").string(), "vae folder"));
  vae_scale_factor_ = vae.spatial_compression_ratio();
  const auto transformer =
      QwenImageTransformerConfig::load((dir / "transformer" / "config.json").string());
  PARADIFF_CHECK(transformer.in_channels % 4 == 0, folder_,
                 "/transformer/config.json: in_channels must be a multiple of 4 (2x2 packed "
                 "latent channels), got ",
                 transformer.in_channels);
  latent_channels_ = transformer.in_channels / 4;
  const std::string transformer_file = (dir / "transformer" / "config.json").string();
  // Every config is read (and validated) before any weight; the components must fit together.
  check_components_match({vae_file, "4 x z_dim", 4 * vae.z_dim},
                         {transformer_file, "in_channels", transformer.in_channels},
                         "Qwen-Image packs 2x2 latent patches into one token");
  check_components_match(
      {transformer_file, "patch_size^2 x out_channels", transformer.output_channels()},
      {transformer_file, "in_channels", transformer.in_channels},
      "each step's prediction updates the packed latents");
  const std::string text_file =
      models::model_config_path((dir / "text_encoder").string(), "text encoder folder");
  const auto text = models::qwen2_5_vl::Qwen2_5_VLTextConfig::load(text_file);
  check_components_match({text_file, "hidden_size", text.hidden_size},
                         {transformer_file, "joint_attention_dim", transformer.joint_attention_dim},
                         "the text encoder's hidden states are the transformer's text input");
  const auto scheduler =
      FlowMatchEulerDiscreteScheduler::from_pretrained((dir / "scheduler").string()).config();
  // diffusers' QwenImagePipeline calls scheduler.step without a generator, so stochastic
  // sampling would draw from torch's global RNG, which cannot be reproduced.
  PARADIFF_CHECK(!scheduler.stochastic_sampling, folder_,
                 "/scheduler/scheduler_config.json: stochastic_sampling = true is not supported "
                 "(QwenImagePipeline draws its noise from torch's global RNG)");
}

std::vector<std::string> QwenImagePipeline::text_components() const {
  return {"tokenizer", "text_encoder"};
}
std::vector<std::string> QwenImagePipeline::denoise_components() const {
  return {"scheduler", "transformer"};
}
std::vector<std::string> QwenImagePipeline::decode_components() const {
  return {"vae"};
}

GenerationOptions QwenImagePipeline::resolve(GenerationOptions o) const {
  return resolve_common(o, 1024, "QwenImagePipeline");
}

Conditioning QwenImagePipeline::encode_prompt(const std::vector<std::string>& prompts,
                                              const std::vector<std::string>& negative_prompts,
                                              const GenerationOptions& options) {
  const bool cfg = true_cfg_for(prompts, negative_prompts, options);
  // Under a pipeline-level map the text encoder's owner alone encodes, and sends the embeddings
  // and masks to the replica; without one this process encodes. Placed by its own map
  // (--text-encoder-device-map, left out of the deal), the encoder runs on every rank of the group
  // (each its layers), and each gets the embeddings.
  const bool encoder_placed = !runtime_.text_encoder_device_map.empty();
  const bool run_encoder = encoder_placed || runs_component("text_encoder");
  if (run_encoder && !negative_prompts.empty() && !cfg)
    log_warning(
        "a negative prompt is given but true classifier-free guidance is off because "
        "true_cfg_scale is ",
        options.true_cfg_scale,
        " (<= 1; diffusers' QwenImagePipeline defaults to 4, paradiff to 1)");
  Conditioning out;
  if (run_encoder) {
    const fs::path dir(folder_);
    auto tokenizer = components_.get<Qwen2Tokenizer>(
        "tokenizer", [&] { return Qwen2Tokenizer::from_pretrained((dir / "tokenizer").string()); });
    auto text_encoder = components_.get<Qwen2_5_VLTextModel>("text_encoder", [&] {
      const std::string folder = (dir / "text_encoder").string();
      return encoder_placed ? Qwen2_5_VLTextModel::from_pretrained_placed(
                                  folder, runtime_.compute, runtime_.text_encoder_device_map,
                                  *runtime_.placement_group, variant_of("text_encoder"))
                            : Qwen2_5_VLTextModel::from_pretrained(folder, runtime_.compute,
                                                                   variant_of("text_encoder"));
    });
    auto encode = [&](const std::vector<std::string>& texts, const std::string& prefix) {
      auto embeds = models::qwen2_5_vl::encode_qwen_image_prompt(
          *text_encoder, models::tokenizers::tokenize_qwen_image_prompts(*tokenizer, texts),
          options.max_sequence_length);
      out[prefix + "prompt_embeds"] = std::move(embeds.prompt_embeds);
      out[prefix + "prompt_embeds_mask"] = std::move(embeds.prompt_embeds_mask);
    };
    encode(prompts, "");
    if (cfg) encode(negative_prompts, "negative_");
  }
  if (!encoder_placed) share_from_owner("text_encoder", out);
  components_.end_stage(text_components());
  return out;
}

Tensor QwenImagePipeline::prepare_latents(const GenerationOptions& options, int64_t count) {
  PARADIFF_CHECK(count >= 1, "prepare_latents needs a count of at least 1, got ", count);
  const int64_t h = latent_size(options.height, vae_scale_factor_);
  const int64_t w = latent_size(options.width, vae_scale_factor_);
  Generator generator(options.seed);
  // diffusers draws (count, 1, z, h, w) in one call: the frame axis of size 1 leaves the element
  // order of (count, z, h, w), and its _pack_latents is FLUX's 2x2 packing.
  return pack_latents(generator.randn(Shape{count, latent_channels_, h, w}, DType::F32));
}

Tensor QwenImagePipeline::denoise(const Conditioning& conditioning, Tensor latents,
                                  const GenerationOptions& options, const StepCallback& on_step) {
  FlowMatchEulerDiscreteScheduler scheduler = scheduler_for(latents, options);
  auto transformer = components_.get<QwenImageTransformer2DModel>("transformer", [&] {
    const std::string folder = (fs::path(folder_) / "transformer").string();
    // Placed: this rank holds only the layers the map gives it.
    auto model = !runtime_.transformer_device_map.empty()
                     ? QwenImageTransformer2DModel::from_pretrained_placed(
                           folder, runtime_.compute, runtime_.transformer_device_map,
                           *runtime_.placement_group, variant_of("transformer"))
                     : QwenImageTransformer2DModel::from_pretrained(folder, runtime_.compute,
                                                                    variant_of("transformer"));
    if (runtime_.mesh) model.enable_parallelism(runtime_.mesh);
    return model;
  });
  const int64_t b = latents.dim(0);
  const int64_t h = latent_size(options.height, vae_scale_factor_);
  const int64_t w = latent_size(options.width, vae_scale_factor_);

  const bool cfg = conditioning.count("negative_prompt_embeds") != 0 &&
                   uses_true_cfg(options, /*has_negative_prompt=*/true);
  models::qwen_image::QwenImageTransformerInputs in[2];
  for (int branch = 0; branch < (cfg ? 2 : 1); ++branch) {
    const std::string prefix = branch == 0 ? "" : "negative_";
    auto& x = in[branch];
    x.encoder_hidden_states = conditioning_tensor(conditioning, prefix + "prompt_embeds");
    PARADIFF_CHECK(x.encoder_hidden_states.ndim() == 3 && x.encoder_hidden_states.dim(0) == b,
                   prefix, "prompt_embeds ", x.encoder_hidden_states.describe(), " must hold ", b,
                   " rows, one per image of the latents ", latents.describe());
    // Without a mask every text token counts, as diffusers treats prompt_embeds_mask=None.
    const auto mask = conditioning.find(prefix + "prompt_embeds_mask");
    if (mask != conditioning.end()) x.encoder_hidden_states_mask = mask->second.to(DType::F32);
    // diffusers' img_shapes: [[(1, h/2, w/2)]] for each batch element.
    x.img_shapes.assign(static_cast<size_t>(b),
                        {models::qwen_image::QwenImageShape{1, h / 2, w / 2}});
  }
  const NormRescaledTrueCfgGuidance true_cfg(options.true_cfg_scale);
  const PredictFn predict = [&](const Tensor& current, float t, Branch branch) {
    auto& x = in[branch == Branch::Conditional ? 0 : 1];
    x.timestep = filled(b, t);  // already t / 1000, as the pipeline passes it
    x.hidden_states = current;
    return transformer->forward(x);
  };
  return run_denoise_loop(scheduler, std::move(latents), predict, cfg ? &true_cfg : nullptr,
                          on_step);
}

Tensor QwenImagePipeline::decode(const Tensor& latents, const GenerationOptions& options) {
  if (!runtime_.vae_device_map.empty()) {
    // Placed: this rank holds only its decoder units; decode is collective over the group.
    using models::vae_qwen_image::PlacedQwenImageVaeDecoder;
    auto vae = components_.get<PlacedQwenImageVaeDecoder>("vae", [&] {
      return PlacedQwenImageVaeDecoder::from_pretrained(
          (fs::path(folder_) / "vae").string(), runtime_.vae_device_map, *runtime_.placement_group,
          variant_of("vae"));
    });
    const int64_t h = latent_size(options.height, vae_scale_factor_);
    const int64_t w = latent_size(options.width, vae_scale_factor_);
    Tensor images = vae->decode(vae->unnormalize_latents(unpack_latents(latents, h, w)));
    components_.end_stage(decode_components());
    kernels::scale_shift_clamp(images, 0.5f, 0.5f, 0.0f, 1.0f, images);
    return images;
  }
  auto vae = components_.get<AutoencoderKLQwenImage>("vae", [&] {
    return AutoencoderKLQwenImage::from_pretrained((fs::path(folder_) / "vae").string(),
                                                   models::vae_qwen_image::VaeParts::DecoderOnly,
                                                   variant_of("vae"));
  });
  const int64_t h = latent_size(options.height, vae_scale_factor_);
  const int64_t w = latent_size(options.width, vae_scale_factor_);
  // decode() takes the VAE's own latent space and returns frame 0, clamped to [-1, 1].
  Tensor images = vae->decode(vae->unnormalize_latents(unpack_latents(latents, h, w)));
  components_.end_stage(decode_components());
  // diffusers' postprocess: (x / 2 + 0.5).clamp(0, 1).
  kernels::scale_shift_clamp(images, 0.5f, 0.5f, 0.0f, 1.0f, images);
  return images;
}

}  // namespace paradiff::pipeline
