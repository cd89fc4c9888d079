// FluxTransformer2DModel as diffusers defines it: embeddings, double blocks, single blocks,
// AdaLayerNormContinuous and the output projection. Loads a diffusers `transformer/` folder
// (single or sharded safetensors) or a Black Forest Labs single-file checkpoint.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "paradiff/models/flux/flux_blocks.h"
#include "paradiff/models/flux/flux_config.h"
#include "paradiff/models/flux/flux_embeddings.h"
#include "paradiff/parallel/attention_backend.h"
#include "paradiff/parallel/context_parallel.h"
#include "paradiff/parallel/device_mesh.h"

namespace paradiff::models::flux {

// The forward arguments, named as diffusers names them.
struct FluxTransformerInputs {
  Tensor hidden_states;          // (B, S_img, in_channels)
  Tensor encoder_hidden_states;  // (B, S_txt, joint_attention_dim)
  Tensor pooled_projections;     // (B, pooled_projection_dim)
  Tensor timestep;               // (B): t / 1000 as the pipeline passes it
  Tensor img_ids;                // (S_img, A); a leading batch dim of 1 is accepted
  Tensor txt_ids;                // (S_txt, A); likewise
  Tensor guidance;               // (B), only for models with guidance_embeds

  // The inputs stored in a safetensors file under these names (read as F32; absent ones stay
  // undefined), as `paradiff transformer-forward --inputs` takes them.
  static FluxTransformerInputs load(const std::string& safetensors_path);

  // By diffusers' argument names, for the context-parallel plan.
  parallel::NamedTensors to_named() const;
  static FluxTransformerInputs from_named(const parallel::NamedTensors& named);
};

class FluxTransformer2DModel {
 public:
  // compute: F32, or BF16 (GEMMs and attention in bf16 with fp32 accumulation; norms, softmax,
  // RoPE and the residual stream in fp32).
  // Binds every parameter through `loader` (which also fixes the compute dtype) and checks that
  // the source holds nothing the model does not use.
  FluxTransformer2DModel(const FluxTransformerConfig& config, ModuleLoader& loader);

  // A diffusers folder: config.json and diffusion_pytorch_model[.safetensors | -*.safetensors
  // with .index.json].
  static FluxTransformer2DModel from_pretrained(const std::string& folder, DType compute,
                                                const std::string& variant = {});
  // The same with diffusers' `parallel_config=` at load time: the config is validated against
  // the world before any weight is read, then the model is loaded with parallelism enabled.
  static FluxTransformer2DModel from_pretrained(const std::string& folder, DType compute,
                                                const parallel::ParallelConfig& parallel_config,
                                                dist::Communicator& world);
  // An original Black Forest Labs checkpoint (fused qkv, linear1, final layer halves swapped);
  // the config comes from a diffusers config.json.
  static FluxTransformer2DModel from_single_file(const std::string& checkpoint,
                                                 const FluxTransformerConfig& config,
                                                 DType compute);

  // Random parameters (see RandomInit): for benchmarks and parallel tests at any size.
  static FluxTransformer2DModel with_random_weights(const FluxTransformerConfig& config,
                                                    DType compute, uint64_t seed);

  const FluxTransformerConfig& config() const { return config_; }
  DType compute_dtype() const { return compute_; }

  // Where attention runs (local by default; context parallelism installs its backend here).
  void set_attention_backend(std::shared_ptr<parallel::AttentionBackend> backend);

  // diffusers' transformer.enable_parallelism(config): from now on forward() splits its inputs
  // over the mesh's context-parallel group by the plan below, runs attention across the group,
  // and returns the full gathered output on every rank of the group.
  void enable_parallelism(std::shared_ptr<parallel::DeviceMesh> mesh);
  // The same from a config, building the mesh over `world` (collective: every rank calls it).
  void enable_parallelism(const parallel::ContextParallelConfig& config, dist::Communicator& world);
  bool parallelism_enabled() const { return mesh_ && mesh_->context_parallel_enabled(); }

  // The FLUX plan: hidden_states and encoder_hidden_states split along dim 1, img_ids and
  // txt_ids along dim 0; pooled_projections, timestep and guidance replicated; `sample` gathered
  // along dim 1.
  static const parallel::ContextParallelPlan& context_parallel_plan();
  parallel::AttentionBackend& attention_backend() const { return *attention_; }

  // Checks every input's shape and dtype against the config; throws naming the input.
  void validate_inputs(const FluxTransformerInputs& inputs) const;
  // Returns `sample`: (B, S_img, patch_size^2 · out_channels) F32.
  Tensor forward(const FluxTransformerInputs& inputs) const;

 private:
  // The forward on this rank's tokens (all of them without context parallelism).
  Tensor forward_local(const FluxTransformerInputs& inputs,
                       const parallel::ForwardContext& context) const;

  FluxTransformerConfig config_;
  DType compute_;
  kernels::Linear x_embedder_, context_embedder_;
  FluxTimeTextEmbedding time_text_embed_;
  std::vector<FluxTransformerBlock> transformer_blocks_;
  std::vector<FluxSingleTransformerBlock> single_transformer_blocks_;
  kernels::Linear norm_out_, proj_out_;  // AdaLayerNormContinuous: C -> 2C (scale, shift)
  std::shared_ptr<parallel::AttentionBackend> attention_;
  std::shared_ptr<parallel::DeviceMesh> mesh_;
};

}  // namespace paradiff::models::flux
