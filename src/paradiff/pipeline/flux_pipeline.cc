#include "paradiff/pipeline/flux_pipeline.h"

#include <filesystem>

#include "paradiff/core/logging.h"
#include "paradiff/core/timer.h"
#include "paradiff/models/clip/clip_text_model.h"
#include "paradiff/models/flux/flux_transformer.h"
#include "paradiff/models/t5/t5_encoder_model.h"
#include "paradiff/models/tokenizers/clip_tokenizer.h"
#include "paradiff/models/tokenizers/t5_tokenizer.h"
#include "paradiff/models/vae/autoencoder_kl.h"
#include "paradiff/pipeline/flow_match_euler_scheduler.h"
#include "paradiff/pipeline/flux_latents.h"
#include "paradiff/pipeline/generator.h"

namespace paradiff::pipeline {

namespace fs = std::filesystem;

namespace {
const char* const kComponents[] = {"scheduler",   "text_encoder", "tokenizer", "text_encoder_2",
                                   "tokenizer_2", "transformer",  "vae"};
}

FluxPipeline::FluxPipeline(const std::string& folder, DType compute)
    : folder_(folder), compute_(compute) {
  PARADIFF_CHECK(fs::is_directory(folder), "model folder '", folder,
                 "' does not exist or is not a directory");
  PARADIFF_CHECK(fs::exists(fs::path(folder) / "model_index.json"), "model folder '", folder,
                 "' has no model_index.json: not a diffusers pipeline folder");
  for (const char* component : kComponents)
    PARADIFF_CHECK(fs::is_directory(fs::path(folder) / component), "model folder '", folder,
                   "' has no ", component,
                   "/ component (FluxPipeline needs scheduler, "
                   "text_encoder, tokenizer, text_encoder_2, tokenizer_2, transformer and vae)");
  vae_scale_factor_ =
      models::vae::AutoencoderKLConfig::load((fs::path(folder) / "vae" / "config.json").string())
          .downsample_factor();
}

GenerationOptions FluxPipeline::resolve(GenerationOptions o) const {
  if (o.height <= 0) o.height = default_image_size();
  if (o.width <= 0) o.width = default_image_size();
  o.height = checked_image_size(o.height, vae_scale_factor_, "height");
  o.width = checked_image_size(o.width, vae_scale_factor_, "width");
  PARADIFF_CHECK(o.num_inference_steps >= 1 && o.num_inference_steps <= 10000,
                 "num_inference_steps must be between 1 and 10000, got ", o.num_inference_steps);
  PARADIFF_CHECK(o.max_sequence_length >= 1 && o.max_sequence_length <= 512,
                 "max_sequence_length must be between 1 and 512 (as FluxPipeline), got ",
                 o.max_sequence_length);
  return o;
}

PromptEmbeds FluxPipeline::encode_prompt(const std::vector<std::string>& prompts,
                                         int64_t max_sequence_length) const {
  PARADIFF_CHECK(!prompts.empty(), "encode_prompt needs at least one prompt");
  const fs::path dir(folder_);
  PromptEmbeds out;
  {
    const auto tokenizer =
        models::tokenizers::CLIPTokenizer::from_pretrained((dir / "tokenizer").string());
    const auto encoder =
        models::clip::CLIPTextModel::from_pretrained((dir / "text_encoder").string(), compute_);
    out.pooled_prompt_embeds = encoder.forward(tokenizer.encode_batch(prompts)).pooler_output;
  }
  {
    const auto tokenizer =
        models::tokenizers::T5Tokenizer::from_pretrained((dir / "tokenizer_2").string());
    const auto encoder =
        models::t5::T5EncoderModel::from_pretrained((dir / "text_encoder_2").string(), compute_);
    out.prompt_embeds = encoder.forward(tokenizer.encode_batch(prompts, max_sequence_length));
  }
  return out;
}

Tensor FluxPipeline::prepare_latents(const GenerationOptions& options) const {
  const int64_t h = latent_size(options.height, vae_scale_factor_);
  const int64_t w = latent_size(options.width, vae_scale_factor_);
  const auto config = models::flux::FluxTransformerConfig::load(
      (fs::path(folder_) / "transformer" / "config.json").string());
  Generator generator(options.seed);
  return pack_latents(generator.randn(Shape{1, config.in_channels / 4, h, w}, DType::F32));
}

Tensor FluxPipeline::denoise(const PromptEmbeds& embeds, Tensor latents,
                             const GenerationOptions& options,
                             std::shared_ptr<parallel::DeviceMesh> mesh,
                             const StepCallback& on_step) const {
  const fs::path dir(folder_);
  auto scheduler = FlowMatchEulerDiscreteScheduler::from_pretrained((dir / "scheduler").string());
  auto transformer = models::flux::FluxTransformer2DModel::from_pretrained(
      (dir / "transformer").string(), compute_);
  if (mesh) transformer.enable_parallelism(std::move(mesh));
  const int64_t b = latents.dim(0);
  const int64_t h = latent_size(options.height, vae_scale_factor_);
  const int64_t w = latent_size(options.width, vae_scale_factor_);
  PARADIFF_CHECK(latents.ndim() == 3 && latents.dim(1) == (h / 2) * (w / 2), "latents ",
                 latents.describe(), " do not fit a ", options.height, "x", options.width,
                 " image (", (h / 2) * (w / 2), " tokens)");
  scheduler.set_timesteps(options.num_inference_steps, scheduler.mu_for(latents.dim(1)));

  models::flux::FluxTransformerInputs in;
  in.encoder_hidden_states = embeds.prompt_embeds;
  in.pooled_projections = embeds.pooled_prompt_embeds;
  in.img_ids = latent_image_ids(h / 2, w / 2);
  in.txt_ids = Tensor::zeros({embeds.prompt_embeds.dim(1), 3}, DType::F32);
  if (transformer.config().guidance_embeds) {
    in.guidance = Tensor::empty({b}, DType::F32);
    for (int64_t i = 0; i < b; ++i) in.guidance.data<float>()[i] = options.guidance_scale;
  }
  in.timestep = Tensor::empty({b}, DType::F32);
  Stopwatch clock;
  const int64_t steps = scheduler.num_inference_steps();
  for (int64_t i = 0; i < steps; ++i) {
    const float t = scheduler.transformer_timestep(i, DType::F32);
    for (int64_t j = 0; j < b; ++j) in.timestep.data<float>()[j] = t;
    in.hidden_states = latents;
    const Tensor velocity = transformer.forward(in);
    scheduler.step_inplace(velocity, i, latents);
    if (on_step) on_step(i + 1, steps, clock.seconds());
  }
  return latents;
}

Tensor FluxPipeline::decode(const Tensor& latents, const GenerationOptions& options) const {
  const auto vae = models::vae::AutoencoderKL::from_pretrained((fs::path(folder_) / "vae").string(),
                                                               models::vae::VaeParts::DecoderOnly);
  const int64_t h = latent_size(options.height, vae_scale_factor_);
  const int64_t w = latent_size(options.width, vae_scale_factor_);
  Tensor images = vae.decode(vae.unscale_latents(unpack_latents(latents, h, w)));
  // diffusers' postprocess: (x / 2 + 0.5).clamp(0, 1).
  float* p = images.data<float>();
  for (int64_t i = 0; i < images.numel(); ++i)
    p[i] = std::min(1.0f, std::max(0.0f, p[i] / 2 + 0.5f));
  return images;
}

}  // namespace paradiff::pipeline
