// DiffusionPipeline: what every text-to-image pipeline offers the engine, in diffusers' stages.
// A pipeline owns its components (loaded on first use through a ComponentCache) and the
// runtime it was opened with (compute dtype, the process mesh); the engine decides which rank
// runs which stage. Concrete pipelines live in pipeline/<family>/ and are registered in
// pipeline_registry.cc under model_index.json's `_class_name`.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "paradiff/core/tensor.h"
#include "paradiff/parallel/context_parallel_plan.h"
#include "paradiff/parallel/device_mesh.h"
#include "paradiff/parallel/placement/model_device_map.h"
#include "paradiff/pipeline/component_cache.h"
#include "paradiff/pipeline/denoise_loop.h"
#include "paradiff/pipeline/flow_match_euler_scheduler.h"

namespace paradiff::pipeline {

// A pipeline's text conditioning by diffusers' names (FLUX: prompt_embeds,
// pooled_prompt_embeds, and negative_prompt_embeds, negative_pooled_prompt_embeds under true
// CFG), so that the engine, the staged commands and the front-ends move any pipeline's
// embeddings without knowing them.
using Conditioning = parallel::NamedTensors;

// One call's options under diffusers' argument names, after resolve() they are complete.
struct GenerationOptions {
  int64_t height = 0;  // 0: the pipeline's default size
  int64_t width = 0;
  int64_t num_inference_steps = 28;
  float guidance_scale = 3.5f;  // guidance-distilled models (FLUX.1-dev): the guidance embedding
  float true_cfg_scale = 1.0f;  // true classifier-free guidance, with a negative prompt, when > 1
  int64_t max_sequence_length = 512;
  uint64_t seed = 0;
  // Images per prompt (diffusers' num_images_per_prompt): rows of one prepare_latents draw.
  int64_t num_images_per_prompt = 1;
};

// What the runtime gives a pipeline when it is opened.
struct PipelineRuntime {
  DType compute = DType::F32;
  // The process mesh: context parallelism inside the transformer, cfg parallelism in the loop.
  // Null: one process computes everything itself.
  std::shared_ptr<parallel::DeviceMesh> mesh;
  ComponentCache::Policy cache_policy = ComponentCache::Policy::KeepLoaded;
  // Model-level placement of the transformer (a cleaned device map over the ranks of
  // `placement_group`, the mesh's stage communicator); empty map: no placement.
  parallel::DeviceMap transformer_device_map{};
  // Model-level placement of FLUX's T5 (text_encoder_2) over `placement_group`: encode_prompt is
  // then collective over the group and every rank gets prompt_embeds. Empty: none.
  parallel::DeviceMap text_encoder_2_device_map{};
  // FLUX's CLIP or Qwen-Image's Qwen2.5-VL (text_encoder), the same way.
  parallel::DeviceMap text_encoder_device_map{};
  dist::Communicator* placement_group = nullptr;
  // Model-level placement of the VAE over the same group (FluxPipeline's AutoencoderKL); empty:
  // none.
  parallel::DeviceMap vae_device_map{};
  // Pipeline-level placement: component -> rank of the mesh's replica that loads and runs it
  // (diffusers' hf_device_map, each stage mapped to its first rank); empty: no map.
  // encode_prompt is then collective over the replica.
  std::map<std::string, int> component_ranks{};
  // diffusers' `variant=` ("fp16"): each model component with files of that variant loads them
  // (Checkpoint::open_folder), the others their non-variant files; refused when no component has
  // any. Empty: the non-variant files.
  std::string variant = "";  // a default member initializer: brace-inits may omit it
};

class DiffusionPipeline {
 public:
  virtual ~DiffusionPipeline() = default;

  virtual std::string class_name() const = 0;  // model_index.json's _class_name
  const std::string& folder() const { return folder_; }
  // Pixels per latent (from the VAE's config) and diffusers' default image size (128 latents).
  int64_t vae_scale_factor() const { return vae_scale_factor_; }
  int64_t default_image_size() const { return 128 * vae_scale_factor_; }
  // The options with defaults filled in and diffusers' rounding applied; throws naming any value
  // the pipeline cannot run.
  virtual GenerationOptions resolve(GenerationOptions options) const = 0;
  // True when a call with these options and a negative prompt runs true classifier-free
  // guidance (two predictions per step): diffusers' do_true_cfg, true_cfg_scale > 1 and a
  // negative prompt.
  virtual bool uses_true_cfg(const GenerationOptions& options, bool has_negative_prompt) const;

  // Stage 1: the conditioning of each prompt (and of each negative prompt under true CFG; then
  // `negative_prompts` holds one per prompt).
  virtual Conditioning encode_prompt(const std::vector<std::string>& prompts,
                                     const std::vector<std::string>& negative_prompts,
                                     const GenerationOptions& options) = 0;
  // The starting latents diffusers draws from options.seed for `count` images: one randn over
  // all `count` rows (as prepare_latents with batch_size * num_images_per_prompt), so row k is
  // image k of one diffusers call, not the seed's first image. Overrides keep the default of 1.
  virtual Tensor prepare_latents(const GenerationOptions& options, int64_t count = 1) = 0;
  // Stage 2: the denoising loop from `latents` (one row per image of `conditioning`); returns
  // the final latents (diffusers' output_type="latent"). Every rank of the runtime's mesh
  // replica calls it with the same arguments.
  virtual Tensor denoise(const Conditioning& conditioning, Tensor latents,
                         const GenerationOptions& options, const StepCallback& on_step = {}) = 0;
  // Stage 3: latents -> images (B, 3, H, W) in [0, 1].
  virtual Tensor decode(const Tensor& latents, const GenerationOptions& options) = 0;

  // Which components each stage uses (for placement and for freeing after a stage).
  virtual std::vector<std::string> text_components() const = 0;
  virtual std::vector<std::string> denoise_components() const = 0;
  virtual std::vector<std::string> decode_components() const = 0;

  ComponentCache& components() { return components_; }
  const ComponentCache& components() const { return components_; }

  // The variant a model component loads: the runtime's variant where its folder has files of
  // it, else "" (its non-variant files), as diffusers decides per component.
  std::string variant_of(const std::string& component) const;
  // The folder of a component ("<pipeline folder>/transformer").
  std::string component_folder(const std::string& component) const;

 protected:
  DiffusionPipeline(std::string folder, const PipelineRuntime& runtime)
      : components_(runtime.cache_policy), folder_(std::move(folder)), runtime_(runtime) {}

  // With a runtime variant, throws unless at least one of `model_components` has its files (as
  // diffusers refuses a variant no component has); logs the components that fall back. Then
  // checks that every model component has a checkpoint to load (a file name, nothing read), so
  // a missing one is refused when the pipeline opens, not after the earlier stages ran.
  // `model_components` maps each component to its checkpoint's file stem ("model",
  // "diffusion_pytorch_model").
  void check_weight_files(const std::map<std::string, std::string>& model_components) const;
  // What every pipeline's resolve shares: default and rounded sizes (multiples of
  // 2·vae_scale_factor, with diffusers' warning), 1 <= steps <= 10000,
  // 1 <= max_sequence_length <= `max_sequence_length` (named after `pipeline`), finite scales.
  GenerationOptions resolve_common(GenerationOptions options, int64_t max_sequence_length,
                                   const char* pipeline) const;
  // Whether encode_prompt runs true CFG, after checking there is one negative prompt per prompt.
  bool true_cfg_for(const std::vector<std::string>& prompts,
                    const std::vector<std::string>& negative_prompts,
                    const GenerationOptions& options) const;
  // The cached scheduler's copy with diffusers' timesteps for `image_tokens` packed latents
  // (sigmas linspace(1, 1/N, N), mu from the config's dynamic shifting), after checking that
  // `latents` (B, tokens, C) fit the options' image size.
  FlowMatchEulerDiscreteScheduler scheduler_for(const Tensor& latents,
                                                const GenerationOptions& options);
  // The shared loop: `predict` per branch, `guidance` (null: no CFG) and, with a cfg mesh
  // dimension, the two branches split between the cfg groups (refused without CFG); then the
  // denoise stage's components end.
  Tensor run_denoise_loop(FlowMatchEulerDiscreteScheduler& scheduler, Tensor latents,
                          const PredictFn& predict, const Guidance* guidance,
                          const StepCallback& on_step);
  // Under a pipeline-level map: whether this rank loads and runs `component` (its owner in the
  // replica; refused, naming it, when the map has no rank for it). Without a map: true.
  bool runs_component(const std::string& component) const;
  // Under a pipeline-level map, `component`'s owner sends `tensors` to every rank of the replica
  // (collective); without a map, nothing.
  void share_from_owner(const std::string& component, Conditioning& tensors) const;
  // conditioning[name], or an error naming the pipeline and the tensor.
  const Tensor& conditioning_tensor(const Conditioning& conditioning,
                                    const std::string& name) const;
  // A (b) F32 tensor holding `value` (a timestep or guidance per batch row).
  static Tensor filled(int64_t b, float value);

  ComponentCache components_;
  std::string folder_;
  PipelineRuntime runtime_;
  int64_t vae_scale_factor_ = 8;
};

}  // namespace paradiff::pipeline
