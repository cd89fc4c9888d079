#include "paradiff/pipeline/diffusion_pipeline.h"

#include <cmath>
#include <filesystem>

#include "paradiff/core/logging.h"
#include "paradiff/dist/tensor_broadcast.h"
#include "paradiff/io/checkpoint.h"
#include "paradiff/kernels/pointwise.h"
#include "paradiff/pipeline/flux/flux_latents.h"

namespace paradiff::pipeline {

std::string DiffusionPipeline::component_folder(const std::string& component) const {
  return (std::filesystem::path(folder_) / component).string();
}

std::string DiffusionPipeline::variant_of(const std::string& component) const {
  if (runtime_.variant.empty()) return {};
  return Checkpoint::folder_has_variant(component_folder(component), runtime_.variant)
             ? runtime_.variant
             : std::string();
}

void DiffusionPipeline::check_weight_files(
    const std::map<std::string, std::string>& model_components) const {
  if (!runtime_.variant.empty()) {
    std::string with, without;
    for (const auto& [c, stem] : model_components)
      (variant_of(c).empty() ? without : with) += (c + " ");
    PARADIFF_CHECK(!with.empty(), folder_, ": no component has files of variant '",
                   runtime_.variant, "' (looked in ", without, "for names such as model.",
                   runtime_.variant, ".safetensors or diffusion_pytorch_model.safetensors.index.",
                   runtime_.variant, ".json)");
    if (!without.empty())
      log_info("variant '", runtime_.variant, "': no files of it in ", without,
               "(their non-variant files are loaded, as diffusers does)");
  }
  for (const auto& [component, stem] : model_components)
    Checkpoint::find_in_folder(component_folder(component), stem, variant_of(component));
}

namespace {

int owner_of(const PipelineRuntime& runtime, const std::string& component) {
  const auto it = runtime.component_ranks.find(component);
  PARADIFF_CHECK(it != runtime.component_ranks.end(),
                 "the pipeline's device map gives no rank for ", component);
  PARADIFF_CHECK(runtime.mesh != nullptr, "a pipeline-level device map needs the process mesh");
  return it->second;
}

}  // namespace

bool DiffusionPipeline::runs_component(const std::string& component) const {
  if (runtime_.component_ranks.empty()) return true;
  return runtime_.mesh->replica().rank() == owner_of(runtime_, component);
}

void DiffusionPipeline::share_from_owner(const std::string& component,
                                         Conditioning& tensors) const {
  if (runtime_.component_ranks.empty()) return;
  dist::broadcast_tensors(runtime_.mesh->replica(), tensors, owner_of(runtime_, component));
}

bool DiffusionPipeline::uses_true_cfg(const GenerationOptions& options,
                                      bool has_negative_prompt) const {
  return options.true_cfg_scale > 1.0f && has_negative_prompt;
}

GenerationOptions DiffusionPipeline::resolve_common(GenerationOptions o,
                                                    int64_t max_sequence_length,
                                                    const char* pipeline) const {
  if (o.height <= 0) o.height = default_image_size();
  if (o.width <= 0) o.width = default_image_size();
  o.height = checked_image_size(o.height, vae_scale_factor_, "height");
  o.width = checked_image_size(o.width, vae_scale_factor_, "width");
  PARADIFF_CHECK(o.num_inference_steps >= 1 && o.num_inference_steps <= 10000,
                 "num_inference_steps must be between 1 and 10000, got ", o.num_inference_steps);
  PARADIFF_CHECK(o.max_sequence_length >= 1 && o.max_sequence_length <= max_sequence_length,
                 "max_sequence_length must be between 1 and ", max_sequence_length, " (as ",
                 pipeline, "), got ", o.max_sequence_length);
  PARADIFF_CHECK(std::isfinite(o.guidance_scale), "guidance_scale must be finite, got ",
                 o.guidance_scale);
  PARADIFF_CHECK(std::isfinite(o.true_cfg_scale), "true_cfg_scale must be finite, got ",
                 o.true_cfg_scale);
  return o;
}

bool DiffusionPipeline::true_cfg_for(const std::vector<std::string>& prompts,
                                     const std::vector<std::string>& negative_prompts,
                                     const GenerationOptions& options) const {
  PARADIFF_CHECK(!prompts.empty(), "encode_prompt needs at least one prompt");
  const bool cfg = uses_true_cfg(options, !negative_prompts.empty());
  PARADIFF_CHECK(!cfg || negative_prompts.size() == prompts.size(), "true CFG needs one negative ",
                 "prompt per prompt: got ", negative_prompts.size(), " for ", prompts.size());
  return cfg;
}

FlowMatchEulerDiscreteScheduler DiffusionPipeline::scheduler_for(const Tensor& latents,
                                                                 const GenerationOptions& options) {
  const int64_t h = latent_size(options.height, vae_scale_factor_);
  const int64_t w = latent_size(options.width, vae_scale_factor_);
  PARADIFF_CHECK(latents.ndim() == 3 && latents.dim(1) == (h / 2) * (w / 2), "latents ",
                 latents.describe(), " do not fit a ", options.height, "x", options.width,
                 " image (", (h / 2) * (w / 2), " tokens)");
  const auto cached = components_.get<FlowMatchEulerDiscreteScheduler>("scheduler", [&] {
    return FlowMatchEulerDiscreteScheduler::from_pretrained(
        (std::filesystem::path(folder_) / "scheduler").string());
  });
  FlowMatchEulerDiscreteScheduler scheduler = *cached;  // set_timesteps mutates it
  // diffusers: sigmas = np.linspace(1, 1/N, N) and mu = calculate_shift(image_seq_len, ...) from
  // the config (ignored without use_dynamic_shifting, as in diffusers).
  scheduler.set_timesteps(options.num_inference_steps, scheduler.mu_for(latents.dim(1)));
  return scheduler;
}

Tensor DiffusionPipeline::run_denoise_loop(FlowMatchEulerDiscreteScheduler& scheduler,
                                           Tensor latents, const PredictFn& predict,
                                           const Guidance* guidance, const StepCallback& on_step) {
  DenoiseLoop loop;
  loop.scheduler = &scheduler;
  loop.predict = predict;
  loop.guidance = guidance;
  if (runtime_.mesh && runtime_.mesh->size(parallel::MeshDim::Cfg) > 1) {
    PARADIFF_CHECK(guidance != nullptr, "the mesh has a cfg dimension of ",
                   runtime_.mesh->size(parallel::MeshDim::Cfg),
                   ", but this call runs no true CFG (it needs true_cfg_scale > 1 and a negative "
                   "prompt)");
    loop.cfg_group = &runtime_.mesh->comm(parallel::MeshDim::Cfg);
  }
  loop.on_step = on_step;
  latents = loop.run(std::move(latents));
  components_.end_stage(denoise_components());
  return latents;
}

const Tensor& DiffusionPipeline::conditioning_tensor(const Conditioning& conditioning,
                                                     const std::string& name) const {
  const auto it = conditioning.find(name);
  PARADIFF_CHECK(it != conditioning.end() && it->second.defined(), class_name(),
                 " conditioning has no '", name, "'");
  return it->second;
}

Tensor DiffusionPipeline::filled(int64_t b, float value) {
  Tensor t = Tensor::empty({b}, DType::F32);
  kernels::fill(t, value);
  return t;
}

}  // namespace paradiff::pipeline
