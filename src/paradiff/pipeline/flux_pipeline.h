// FluxPipeline: text to image with a diffusers-format FLUX folder (model_index.json, scheduler/,
// text_encoder/ (CLIP), tokenizer/, text_encoder_2/ (T5), tokenizer_2/, transformer/, vae/).
// The three stages load only what they need, so each fits in memory on its own, as the
// reference's staged workflow does: encode_prompt (tokenizers + text encoders), denoise
// (transformer + scheduler), decode (VAE).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "paradiff/core/tensor.h"
#include "paradiff/parallel/device_mesh.h"

namespace paradiff::pipeline {

struct PromptEmbeds {
  Tensor prompt_embeds;         // (B, max_sequence_length, joint_attention_dim) F32: T5
  Tensor pooled_prompt_embeds;  // (B, pooled_projection_dim) F32: CLIP pooled output
};

struct GenerationOptions {
  int64_t height = 0;  // 0: the transformer's default sample size (FLUX: 1024)
  int64_t width = 0;
  int64_t num_inference_steps = 28;
  float guidance_scale = 3.5f;  // used only by models with guidance embeddings
  int64_t max_sequence_length = 512;
  uint64_t seed = 0;
};

// Called after every denoising step: (step done, total steps, seconds since denoising began).
using StepCallback = std::function<void(int64_t, int64_t, double)>;

class FluxPipeline {
 public:
  // Checks the folder before any heavy work: model_index.json and every component folder exist.
  FluxPipeline(const std::string& folder, DType compute);

  const std::string& folder() const { return folder_; }
  // Pixels per latent (2^(len(vae block_out_channels) - 1)) and the default image size.
  int64_t vae_scale_factor() const { return vae_scale_factor_; }
  int64_t default_image_size() const { return 128 * vae_scale_factor_; }
  // Rounds the options' sizes as diffusers does (multiples of 2·vae_scale_factor, warning) and
  // checks the rest (steps >= 1, 1 <= max_sequence_length <= 512).
  GenerationOptions resolve(GenerationOptions options) const;

  // Stage 1: CLIP pooled embedding and T5 hidden states for each prompt.
  PromptEmbeds encode_prompt(const std::vector<std::string>& prompts,
                             int64_t max_sequence_length) const;
  // The starting latents diffusers draws for one image: torch.Generator().manual_seed(seed) and
  // randn (1, 16, h, w), packed to (1, (h/2)(w/2), 64).
  Tensor prepare_latents(const GenerationOptions& options) const;
  // Stage 2: the denoising loop from `latents` (packed); returns the final packed latents. With a
  // mesh, the transformer runs context-parallel over it (every rank passes the same inputs).
  Tensor denoise(const PromptEmbeds& embeds, Tensor latents, const GenerationOptions& options,
                 std::shared_ptr<parallel::DeviceMesh> mesh = nullptr,
                 const StepCallback& on_step = nullptr) const;
  // Stage 3: packed latents -> images (B, 3, H, W) in [0, 1].
  Tensor decode(const Tensor& latents, const GenerationOptions& options) const;

 private:
  std::string folder_;
  DType compute_;
  int64_t vae_scale_factor_ = 8;
};

}  // namespace paradiff::pipeline
