// One generation call's arguments under diffusers' names (FluxPipeline.__call__), as every
// front-end hands them to the engine: the CLI, the Python package, the server.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "paradiff/pipeline/diffusion_pipeline.h"

namespace paradiff::engine {

// The most images one request may ask per prompt: each is a full denoising batch row, so a typo
// (1000 for 10) would otherwise allocate for minutes before failing.
constexpr int64_t kMaxImagesPerPrompt = 64;

// diffusers' output_type: decoded images ("pil" and "np" are the same images to the engine; the
// front-end converts), or the final latents alone ("latent": no VAE decode).
enum class OutputType { Pil, Np, Latent };

// Where each image's starting latents come from when a request holds several prompts.
//   PerPrompt: every prompt starts from the seed's latents, as one diffusers call per prompt
//              would (prompt p's image k is row k of a draw of num_images_per_prompt rows); the
//              CLI's --prompts file, whose lines are independent jobs.
//   OneBatch:  one diffusers call with the whole prompt list: one draw of
//              prompts x num_images_per_prompt rows from the seed, item i (prompt-major) from
//              row i; the Python package's pipe(prompt=[...], generator=...).
enum class LatentDraw { PerPrompt, OneBatch };
OutputType parse_output_type(const std::string& name);
const char* output_type_name(OutputType type);

struct GenerationRequest {
  std::vector<std::string> prompt;           // num_images_per_prompt images per prompt
  std::vector<std::string> negative_prompt;  // none, one for every prompt, or one per prompt
  int64_t height = 0;                        // 0: the pipeline's default
  int64_t width = 0;
  int64_t num_inference_steps = 28;
  float guidance_scale = 3.5f;
  float true_cfg_scale = 1.0f;
  // torch.Generator().manual_seed(seed): every prompt starts from this seed's latents, as one
  // diffusers call per prompt would.
  uint64_t seed = 0;
  // Optional: one seed per prompt (prompt p starts from seeds[p]'s latents, as its own diffusers
  // call with that seed would); empty: `seed` for every prompt. The server batches requests with
  // different seeds into one run this way.
  std::vector<uint64_t> seeds;
  // Images per prompt: prompt p's image k starts from row k of ONE draw of this many rows from
  // the seed, as one diffusers call with prompt=p and num_images_per_prompt would.
  int64_t num_images_per_prompt = 1;
  LatentDraw latent_draw = LatentDraw::PerPrompt;
  int64_t max_sequence_length = 512;
  OutputType output_type = OutputType::Pil;
  // Data parallel: pad short shares with the last prompt so every replica runs the same count
  // (accelerate's apply_padding; padded results are dropped).
  bool apply_padding = false;

  // The per-call options the pipeline resolves (sizes, steps, guidance, seed).
  pipeline::GenerationOptions options() const;
  // The negative prompt of prompt `index` (empty when the request has none).
  std::string negative_prompt_for(size_t index) const;
  // Checks what does not need the model: at least one prompt, negative prompt count, images per
  // prompt.
  void validate() const;
};

}  // namespace paradiff::engine
