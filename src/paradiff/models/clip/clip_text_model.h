// CLIPTextModel as transformers defines it, for FluxPipeline's `text_encoder`: token + position
// embeddings, pre-LayerNorm encoder layers with causal self-attention and an MLP, a final
// LayerNorm, and the pooled output (the hidden state at the EOS position), which is what FLUX
// takes from CLIP (`pooled_prompt_embeds`).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "paradiff/dist/communicator.h"
#include "paradiff/kernels/linear.h"
#include "paradiff/models/clip/clip_text_config.h"
#include "paradiff/models/module_loader.h"
#include "paradiff/models/unit_placement.h"
#include "paradiff/parallel/placement/model_device_map.h"

namespace paradiff::models::clip {

struct CLIPTextModelOutput {
  Tensor last_hidden_state;  // (B, S, hidden_size) F32, after final_layer_norm
  Tensor pooler_output;      // (B, hidden_size) F32
};

// One encoder layer's parameters ("encoder.layers.N").
struct CLIPEncoderLayer {
  // LayerNorm weight and bias as layer_norm_modulate takes them: scale = weight - 1, shift = bias,
  // each (1, hidden) F32.
  Tensor layer_norm1_scale, layer_norm1_shift, layer_norm2_scale, layer_norm2_shift;
  kernels::Linear q_proj, k_proj, v_proj, out_proj, fc1, fc2;
};

class CLIPTextModel {
 public:
  // compute (the loader's): F32, or BF16 (GEMM and attention inputs in bf16; LayerNorm statistics,
  // softmax and the residual stream in fp32). `prefix` is prepended to every checkpoint name
  // ("text_model." in checkpoints saved before transformers 5, "" after). Checks that the source
  // holds nothing else (an old checkpoint's "embeddings.position_ids" buffer is accepted).
  CLIPTextModel(const CLIPTextConfig& config, ModuleLoader& loader, const std::string& prefix = "");

  // A transformers folder (FluxPipeline's text_encoder/): config.json and model.safetensors
  // (single or sharded), names with or without the "text_model." prefix.
  static CLIPTextModel from_pretrained(const std::string& folder, DType compute,
                                       const std::string& variant = {});
  static CLIPTextModel with_random_weights(const CLIPTextConfig& config, DType compute,
                                           uint64_t seed);

  // Model-level placement (--text-encoder-device-map: accelerate's device_map executed across
  // the ranks of `group`). The execution units, in the order forward runs them: "embeddings",
  // every "encoder.layers.i", "final_layer_norm" (names without the checkpoint's prefix).
  static std::vector<std::string> execution_units(const CLIPTextConfig& config);
  // This rank binds only the units `map` gives it; forward() is then collective over `group`:
  // every rank passes the same input_ids; the owner of each run of consecutive units computes
  // them for the whole batch and sends the hidden states (B, S, hidden) F32 to the next run's
  // owner; final_layer_norm's owner broadcasts last_hidden_state and pooler_output, so every rank
  // returns them. A unit on "disk" runs on rank 0, streamed from the folder's safetensors at each
  // forward (read ahead while the unit before it computes, freed after it runs), as the
  // transformers' are. `group` must outlive the model.
  static CLIPTextModel from_pretrained_placed(const std::string& folder, DType compute,
                                              const parallel::DeviceMap& map,
                                              dist::Communicator& group,
                                              const std::string& variant = {});
  bool is_placed() const { return placement_ != nullptr; }
  // Bytes of the parameters this process bound, in the dtype each was bound in (before oneDNN
  // packs them): under a placement, this rank's share.
  int64_t parameter_bytes() const { return parameter_bytes_; }

  const CLIPTextConfig& config() const { return config_; }
  DType compute_dtype() const { return compute_; }

  // input_ids: I64 (B, S) with 1 <= S <= max_position_embeddings and every id in
  // [0, vocab_size). No attention mask, as FluxPipeline passes none. The pooled row is the first
  // EOS position (config.eos_token_id; none: position 0), or with the legacy eos_token_id 2 the
  // position of the largest id, exactly as transformers picks it.
  CLIPTextModelOutput forward(const Tensor& input_ids) const;

 private:
  CLIPTextModel(const CLIPTextConfig& config, ModuleLoader& loader, const std::string& prefix,
                std::shared_ptr<const UnitPlacement> placement);
  CLIPTextModelOutput forward_placed(const Tensor& input_ids) const;
  // The final LayerNorm of one prompt's residual stream x (S, hidden) into `last` (1, S, hidden),
  // and its pooled row into `pooled` (hidden).
  void finish_prompt(const int64_t* ids, const Tensor& x, Tensor& last, Tensor pooled) const;
  // The same with a given final LayerNorm (scale, shift): a streamed one.
  void finish_prompt(const int64_t* ids, const Tensor& x, Tensor& last, Tensor pooled,
                     const Tensor& scale, const Tensor& shift) const;

  CLIPTextConfig config_;
  DType compute_;
  Tensor token_embedding_;     // (vocab, hidden) in the compute dtype
  Tensor position_embedding_;  // (max_positions, hidden) F32
  std::vector<CLIPEncoderLayer> layers_;
  Tensor final_scale_, final_shift_;  // final_layer_norm as (1, hidden) scale and shift
  std::shared_ptr<const UnitPlacement> placement_;   // null: this process binds every unit
  std::shared_ptr<const WeightSource> disk_source_;  // what "disk" units stream from
  int64_t parameter_bytes_ = 0;
};

}  // namespace paradiff::models::clip
