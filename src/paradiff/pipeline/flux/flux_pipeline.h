// FluxPipeline: text to image with a diffusers-format FLUX folder (model_index.json, scheduler/,
// text_encoder/ (CLIP), tokenizer/, text_encoder_2/ (T5), tokenizer_2/, transformer/, vae/), in
// diffusers' stages: encode_prompt (tokenizers + text encoders), denoise (transformer +
// scheduler, the shared DenoiseLoop), decode (VAE). Components load on first use and stay in
// the pipeline's ComponentCache (or are freed after their stage, by its policy).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "paradiff/pipeline/diffusion_pipeline.h"
#include "paradiff/pipeline/model_index.h"

namespace paradiff::pipeline {

class FluxPipeline : public DiffusionPipeline {
 public:
  // Checks the folder before any heavy work: model_index.json names a FluxPipeline whose
  // components are the classes paradiff runs, every component folder exists, every config is
  // valid and the components fit one another (T5 d_model = joint_attention_dim, CLIP
  // hidden_size = pooled_projection_dim, 4 x VAE latent_channels = in_channels = out_channels).
  FluxPipeline(const ModelIndex& index, const PipelineRuntime& runtime);
  FluxPipeline(const std::string& folder, DType compute);

  // What model_index.json must list, with the classes accepted for each component.
  static const std::map<std::string, std::vector<std::string>>& required_components();

  std::string class_name() const override { return "FluxPipeline"; }
  // vae_scale_factor() is 2^(len(vae block_out_channels) - 1).
  // Rounds the options' sizes as diffusers does (multiples of 2·vae_scale_factor, warning) and
  // checks the rest (steps >= 1, 1 <= max_sequence_length <= 512).
  GenerationOptions resolve(GenerationOptions options) const override;

  // CLIP pooled embedding and T5 hidden states for each prompt: prompt_embeds (B, L, 4096-ish),
  // pooled_prompt_embeds (B, 768-ish); the negative_* pair too under true CFG.
  Conditioning encode_prompt(const std::vector<std::string>& prompts,
                             const std::vector<std::string>& negative_prompts,
                             const GenerationOptions& options) override;
  // torch.Generator().manual_seed(seed) and randn (1, 16, h, w), packed to (1, (h/2)(w/2), 64).
  Tensor prepare_latents(const GenerationOptions& options, int64_t count = 1) override;
  // The transformer runs context-parallel over the runtime's mesh; under true CFG with a cfg
  // mesh dimension of 2, the two predictions of each step are computed by the two cfg groups.
  Tensor denoise(const Conditioning& conditioning, Tensor latents, const GenerationOptions& options,
                 const StepCallback& on_step = {}) override;
  // Packed latents -> images (B, 3, H, W) in [0, 1].
  Tensor decode(const Tensor& latents, const GenerationOptions& options) override;

  std::vector<std::string> text_components() const override;
  std::vector<std::string> denoise_components() const override;
  std::vector<std::string> decode_components() const override;

 private:
  void check_components();
};

}  // namespace paradiff::pipeline
