// QwenImageTransformer2DModel as diffusers defines it: img_in, txt_norm + txt_in, the timestep
// embedding, dual-stream blocks with joint attention, AdaLayerNormContinuous and proj_out. Loads
// a diffusers `transformer/` folder (single or sharded safetensors).
//
// The text mask. diffusers uses encoder_hidden_states_mask only as a key mask of the joint
// attention: no query, text or image, ever attends to a masked token, and a masked token's own
// row only changes the text stream, which the output discards. Dropping masked tokens before the
// forward therefore leaves the output unchanged, as long as the kept tokens keep their RoPE
// positions (their index in the padded sequence), which they do here. forward() drops them per
// batch element, so attention needs no mask and under context parallelism only real tokens are
// split across ranks.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "paradiff/core/block_weights.h"
#include "paradiff/models/qwen_image/qwen_image_blocks.h"
#include "paradiff/models/qwen_image/qwen_image_config.h"
#include "paradiff/models/qwen_image/qwen_image_pos_embed.h"
#include "paradiff/models/unit_placement.h"
#include "paradiff/parallel/attention_backend.h"
#include "paradiff/parallel/context_parallel.h"
#include "paradiff/parallel/device_mesh.h"

namespace paradiff::models::qwen_image {

// The forward arguments, named as diffusers names them.
struct QwenImageTransformerInputs {
  Tensor hidden_states;               // (B, S_img, in_channels): packed latents
  Tensor encoder_hidden_states;       // (B, S_txt, joint_attention_dim): prompt_embeds
  Tensor encoder_hidden_states_mask;  // (B, S_txt), nonzero = valid; undefined: all valid
  Tensor timestep;                    // (B): t / 1000 as the pipeline passes it
  // Per batch element, its images' (frame, height, width) in packed tokens. As in diffusers,
  // only the first element's list sets the positions (a warning if the others differ).
  std::vector<std::vector<QwenImageShape>> img_shapes;
  // Older diffusers' argument (mask.sum(1)); later ignored, then removed. Checked and ignored:
  // the RoPE length is the padded text length.
  std::vector<int64_t> txt_seq_lens;

  // The inputs stored in a safetensors file: the tensors above under their names (read as F32;
  // the mask optional), img_shapes as (B, N, 3) or (B, 3).
  static QwenImageTransformerInputs load(const std::string& safetensors_path);
};

class QwenImageTransformer2DModel {
 public:
  // compute: F32, or BF16 (GEMMs and attention in bf16 with fp32 accumulation; norms, softmax,
  // RoPE and the residual stream in fp32). Binds every parameter through `loader` and checks
  // that the source holds nothing the model does not use.
  QwenImageTransformer2DModel(const QwenImageTransformerConfig& config, ModuleLoader& loader);

  // A diffusers folder: config.json and diffusion_pytorch_model[.safetensors | -*.safetensors
  // with .index.json].
  static QwenImageTransformer2DModel from_pretrained(const std::string& folder, DType compute,
                                                     const std::string& variant = {});
  // The same with diffusers' `parallel_config=` at load time: the mesh (and so the config) is
  // validated against the world before any weight is read, then parallelism is enabled.
  static QwenImageTransformer2DModel from_pretrained(
      const std::string& folder, DType compute, const parallel::ParallelConfig& parallel_config,
      dist::Communicator& world);
  // Random parameters (see RandomInit): for benchmarks and parallel tests at any size.
  static QwenImageTransformer2DModel with_random_weights(const QwenImageTransformerConfig& config,
                                                         DType compute, uint64_t seed);

  // Model-level placement (accelerate's device_map executed across ranks). The execution units,
  // in the order forward runs them: time_text_embed, txt_norm, txt_in, img_in, every
  // transformer_blocks.i, norm_out, proj_out.
  static std::vector<std::string> execution_units(const QwenImageTransformerConfig& config);
  // This rank of `group` binds (reads, packs, holds) only the units `map` gives it; forward() is
  // then collective over `group`. Per batch element: the owner of time_text_embed computes
  // SiLU(temb) and broadcasts it (every rank builds the RoPE tables from the positions it has);
  // the owner of each run of consecutive units computes them and sends the joint hidden states
  // (text and image rows) to the next run's owner; the head's owner broadcasts `sample`, so
  // every rank returns it. txt_norm, txt_in and img_in must share an owner, as must norm_out and
  // proj_out. Any unit may be on "disk": the main rank (0) then binds it from the checkpoint at
  // each use, reading the next disk unit's tensors ahead while the current one computes; it is
  // never held between uses. `group` must outlive the model.
  static QwenImageTransformer2DModel from_pretrained_placed(const std::string& folder,
                                                            DType compute,
                                                            const parallel::DeviceMap& map,
                                                            dist::Communicator& group,
                                                            const std::string& variant = {});
  bool is_placed() const { return placement_ != nullptr; }
  // Bytes of the parameters this process bound, in the dtype each was bound in, before oneDNN
  // packs them: under a placement, this rank's share.
  int64_t parameter_bytes() const { return parameter_bytes_; }

  const QwenImageTransformerConfig& config() const { return config_; }
  DType compute_dtype() const { return compute_; }

  void set_attention_backend(std::shared_ptr<parallel::AttentionBackend> backend);
  // diffusers' transformer.enable_parallelism(config): forward() then splits each batch
  // element's tokens over the mesh's context-parallel group by the plan below and returns the
  // full gathered output on every rank of the group.
  void enable_parallelism(std::shared_ptr<parallel::DeviceMesh> mesh);
  void enable_parallelism(const parallel::ContextParallelConfig& config, dist::Communicator& world);
  bool parallelism_enabled() const { return mesh_ && mesh_->context_parallel_enabled(); }

  // Applied per batch element after masked text tokens are dropped: hidden_states and
  // encoder_hidden_states split along dim 1 (the attention sequence), their RoPE positions
  // (image_positions, text_positions: (S, 3)) along dim 0, so each rank builds the tables of its
  // own tokens (diffusers splits pos_embed's outputs instead); timestep replicated; `sample`
  // gathered along dim 1.
  static const parallel::ContextParallelPlan& context_parallel_plan();

  // Checks every input's shape and dtype against the config; throws naming the input.
  void validate_inputs(const QwenImageTransformerInputs& inputs) const;
  // Returns `sample`: (B, S_img, patch_size^2 · out_channels) F32.
  Tensor forward(const QwenImageTransformerInputs& inputs) const;

 private:
  QwenImageTransformer2DModel(const QwenImageTransformerConfig& config, ModuleLoader& loader,
                              std::shared_ptr<const UnitPlacement> placement);

  // One batch element on this rank's tokens: hidden_states (1, n_img, in), encoder_hidden_states
  // (1, n_txt, joint), timestep (1), image_positions (n_img, 3), text_positions (n_txt, 3).
  Tensor forward_local(const parallel::NamedTensors& local,
                       const parallel::ForwardContext& context) const;
  // The same under a placement (collective over the placement group).
  Tensor forward_placed(const parallel::NamedTensors& local,
                        const parallel::ForwardContext& context) const;
  // The pieces of a forward, shared by both: SiLU(temb) (1, C) F32; the RoPE tables of this
  // rank's rows [text, image]; txt_norm + txt_in and img_in into h (n_txt + n_img, C); the output
  // head (norm_out + proj_out) from the image rows of h into sample (1, n_img, out channels).
  // Each takes the weights it runs with: the held ones, or a "disk" unit's streamed ones.
  Tensor conditioning(const parallel::NamedTensors& local,
                      const QwenTimestepProjEmbeddings& time_text_embed) const;
  RotaryTables rotary_tables(const parallel::NamedTensors& local) const;
  void embed(const parallel::NamedTensors& local, const Tensor& txt_norm,
             const kernels::Linear& txt_in, const kernels::Linear& img_in, Tensor& h) const;
  Tensor output_head(const Tensor& h, int64_t text_tokens, const Tensor& silu_temb,
                     const kernels::Linear& norm_out, const kernels::Linear& proj_out) const;
  // A unit on "disk", bound from the checkpoint for one use.
  struct StreamedUnit {
    std::optional<QwenImageTransformerBlock> block;
    QwenTimestepProjEmbeddings time_text_embed;
    Tensor weight;           // txt_norm's
    kernels::Linear linear;  // txt_in, img_in, norm_out.linear or proj_out
  };
  StreamedUnit bind_streamed(const std::string& unit, const WeightSource& source) const;

  QwenImageTransformerConfig config_;
  DType compute_;
  kernels::Linear img_in_, txt_in_;
  Tensor txt_norm_;  // RMSNorm weight (joint_attention_dim) F32
  QwenTimestepProjEmbeddings time_text_embed_;
  // Empty where a placement gives the block to another rank.
  std::vector<std::optional<QwenImageTransformerBlock>> transformer_blocks_;
  kernels::Linear norm_out_, proj_out_;  // AdaLayerNormContinuous: C -> 2C (scale, shift)
  std::shared_ptr<parallel::AttentionBackend> attention_;
  std::shared_ptr<parallel::DeviceMesh> mesh_;
  std::shared_ptr<const UnitPlacement> placement_;
  std::shared_ptr<BlockWeights> block_weights_;      // null: every block's weights resident
  std::shared_ptr<const WeightSource> disk_source_;  // the checkpoint "disk" units stream from
  int64_t parameter_bytes_ = 0;
};

}  // namespace paradiff::models::qwen_image
