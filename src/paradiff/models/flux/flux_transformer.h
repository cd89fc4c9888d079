// FluxTransformer2DModel as diffusers defines it: embeddings, double blocks, single blocks,
// AdaLayerNormContinuous and the output projection. Loads a diffusers `transformer/` folder
// (single or sharded safetensors) or a Black Forest Labs single-file checkpoint.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "paradiff/core/block_weights.h"
#include "paradiff/models/flux/flux_blocks.h"
#include "paradiff/models/flux/flux_config.h"
#include "paradiff/models/flux/flux_embeddings.h"
#include "paradiff/models/unit_placement.h"
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

  // Model-level placement (accelerate's device_map executed across ranks). The execution units,
  // in the order forward runs them: time_text_embed, context_embedder, x_embedder, every
  // transformer_blocks.i, every single_transformer_blocks.i, norm_out, proj_out.
  static std::vector<std::string> execution_units(const FluxTransformerConfig& config);
  // This rank of `group` binds (reads, packs, holds) only the units `map` gives it; forward()
  // is then collective over `group`: the owner of time_text_embed computes SiLU(temb) and
  // broadcasts it once per forward (every rank builds the RoPE tables from the ids it has); the
  // owner of each run of consecutive units computes them for the whole batch and sends the joint
  // hidden states (text and image rows together) to the next run's owner; the output head's
  // owner broadcasts `sample`, so every rank returns it. context_embedder and x_embedder must
  // share an owner, as must norm_out and proj_out. Any unit may be on "disk": the main rank (0)
  // then binds it from the checkpoint at each forward, reading the next disk unit's tensors
  // ahead in a background thread while the current one computes; it is never held between
  // forwards. `group` must outlive the model.
  static FluxTransformer2DModel from_pretrained_placed(const std::string& folder, DType compute,
                                                       const parallel::DeviceMap& map,
                                                       dist::Communicator& group,
                                                       const std::string& variant = {});
  bool is_placed() const { return placement_ != nullptr; }
  // Bytes of the parameters this process bound, in the dtype each was bound in (linear weights
  // in the compute dtype, everything else F32), before oneDNN packs them: under a placement,
  // this rank's share.
  int64_t parameter_bytes() const { return parameter_bytes_; }

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
  FluxTransformer2DModel(const FluxTransformerConfig& config, ModuleLoader& loader,
                         std::shared_ptr<const UnitPlacement> placement);

  // The forward on this rank's tokens (all of them without context parallelism).
  Tensor forward_local(const FluxTransformerInputs& inputs,
                       const parallel::ForwardContext& context) const;
  // The pieces of a forward, shared by the local and the placed one: SiLU(temb) (B, C) F32;
  // the RoPE tables of [text, image]; the embedders into one batch element's h (S, C); the
  // output head (norm_out + proj_out) from h into out (S_img, out channels).
  // Each takes the weights it runs with: the held ones, or a "disk" unit's streamed ones.
  Tensor conditioning(const FluxTransformerInputs& inputs,
                      const FluxTimeTextEmbedding& time_text_embed) const;
  RotaryTables rotary_tables(const FluxTransformerInputs& inputs) const;
  void embed(const Tensor& encoder_hidden_states, const Tensor& hidden_states,
             const kernels::Linear& context_embedder, const kernels::Linear& x_embedder,
             Tensor& h) const;
  void output_head(const Tensor& h, int64_t text_tokens, const Tensor& silu_row,
                   const kernels::Linear& norm_out, const kernels::Linear& proj_out,
                   Tensor& out) const;
  // A unit on "disk", bound from the checkpoint for one forward.
  struct StreamedUnit {
    std::optional<FluxTransformerBlock> double_block;
    std::optional<FluxSingleTransformerBlock> single_block;
    FluxTimeTextEmbedding time_text_embed;
    kernels::Linear linear;  // context_embedder, x_embedder, norm_out.linear or proj_out
  };
  StreamedUnit bind_streamed(const std::string& unit, const WeightSource& source) const;
  // The forward of a placed model (collective over the placement group).
  Tensor forward_placed(const FluxTransformerInputs& inputs,
                        const parallel::ForwardContext& context) const;

  FluxTransformerConfig config_;
  DType compute_;
  kernels::Linear x_embedder_, context_embedder_;
  FluxTimeTextEmbedding time_text_embed_;
  // Empty where a placement gives the block to another rank.
  std::vector<std::optional<FluxTransformerBlock>> transformer_blocks_;
  std::vector<std::optional<FluxSingleTransformerBlock>> single_transformer_blocks_;
  kernels::Linear norm_out_, proj_out_;  // AdaLayerNormContinuous: C -> 2C (scale, shift)
  std::shared_ptr<parallel::AttentionBackend> attention_;
  std::shared_ptr<parallel::DeviceMesh> mesh_;
  std::shared_ptr<const UnitPlacement> placement_;
  std::shared_ptr<const WeightSource> disk_source_;  // the checkpoint "disk" units stream from
  std::shared_ptr<BlockWeights> block_weights_;      // null: every block's weights resident
  int64_t parameter_bytes_ = 0;
};

}  // namespace paradiff::models::flux
