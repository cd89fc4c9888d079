// QwenImagePipeline: text to image with a diffusers-format Qwen-Image folder (model_index.json,
// scheduler/, text_encoder/ (Qwen2.5-VL), tokenizer/ (Qwen2), transformer/, vae/), in diffusers'
// stages: encode_prompt (templated prompt -> the language model's last hidden states and their
// mask), denoise (QwenImageTransformer2DModel + FlowMatchEulerDiscreteScheduler through the
// shared DenoiseLoop, true CFG with norm rescaling), decode (AutoencoderKLQwenImage, one frame).
//
// true_cfg_scale. diffusers' QwenImagePipeline defaults it to 4.0, paradiff's options (and the
// CLI's --true-cfg-scale) to 1.0 for every pipeline. So a request with --negative-prompt but no
// --true-cfg-scale runs no CFG here: one prediction per step, the negative prompt unused (the
// engine does not pass it on, so nothing is logged; encode_prompt called directly with negative
// prompts and a scale <= 1 warns, as diffusers does). Pass --true-cfg-scale 4 for diffusers'
// default. Without a negative prompt neither runs CFG, whatever the scale.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "paradiff/pipeline/diffusion_pipeline.h"
#include "paradiff/pipeline/model_index.h"

namespace paradiff::pipeline {

// Qwen-Image's true CFG: uncond + scale · (cond − uncond), each token's vector then rescaled to
// the conditional prediction's L2 norm (kernels::cfg_norm_rescale).
class NormRescaledTrueCfgGuidance : public Guidance {
 public:
  explicit NormRescaledTrueCfgGuidance(float scale) : scale_(scale) {}
  Tensor combine(const Tensor& conditional, const Tensor& unconditional) const override;

 private:
  float scale_;
};

class QwenImagePipeline : public DiffusionPipeline {
 public:
  // Checks the folder before any heavy work: model_index.json names a QwenImagePipeline whose
  // components are the classes paradiff runs, every component folder exists, and the
  // scheduler's config is one this pipeline can run as diffusers does.
  QwenImagePipeline(const ModelIndex& index, const PipelineRuntime& runtime);
  QwenImagePipeline(const std::string& folder, DType compute);

  // What model_index.json must list, with the classes accepted for each component.
  static const std::map<std::string, std::vector<std::string>>& required_components();

  std::string class_name() const override { return "QwenImagePipeline"; }
  // vae_scale_factor() is 2^len(vae temperal_downsample) (8 for Qwen-Image).
  // Rounds the sizes as diffusers does (multiples of 2·vae_scale_factor, warning) and checks
  // the rest (steps >= 1, 1 <= max_sequence_length <= 1024, finite scales). guidance_scale is
  // unused: the transformer has no guidance embedding (its config refuses one).
  GenerationOptions resolve(GenerationOptions options) const override;

  // prompt_embeds (B, S, hidden) F32 and prompt_embeds_mask (B, S) I64, and the negative_*
  // pair (its own length) under true CFG.
  Conditioning encode_prompt(const std::vector<std::string>& prompts,
                             const std::vector<std::string>& negative_prompts,
                             const GenerationOptions& options) override;
  // torch.Generator().manual_seed(seed) and randn (1, 1, z, h, w) (the element order of
  // (1, z, h, w)), packed to (1, (h/2)(w/2), 4z); z = transformer in_channels / 4.
  Tensor prepare_latents(const GenerationOptions& options, int64_t count = 1) override;
  // The transformer runs context-parallel over the runtime's mesh; under true CFG with a cfg
  // mesh dimension of 2, the two predictions of each step are computed by the two cfg groups.
  Tensor denoise(const Conditioning& conditioning, Tensor latents, const GenerationOptions& options,
                 const StepCallback& on_step = {}) override;
  // Packed latents -> un-normalised VAE latents -> images (B, 3, H, W) in [0, 1].
  Tensor decode(const Tensor& latents, const GenerationOptions& options) override;

  std::vector<std::string> text_components() const override;
  std::vector<std::string> denoise_components() const override;
  std::vector<std::string> decode_components() const override;

 private:
  int64_t latent_channels_ = 16;  // transformer in_channels / 4
};

}  // namespace paradiff::pipeline
