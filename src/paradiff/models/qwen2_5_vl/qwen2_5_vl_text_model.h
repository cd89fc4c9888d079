// The text path of transformers' Qwen2_5_VLForConditionalGeneration (its language model,
// Qwen2_5_VLTextModel), QwenImagePipeline's text encoder: token embedding, decoder layers of
// (RMSNorm, causal grouped-query self-attention with q/k/v bias and rotary embedding, RMSNorm,
// SwiGLU MLP), a final RMSNorm. The vision tower and lm_head are never run, and their weights
// are never read.
//
// Text-only positions: transformers 5 gives token j position j on all three multimodal-RoPE rows
// (the padded index, whatever the mask), so mRoPE is plain RoPE with theta = rope_theta over the
// head dim, in transformers' rotate-half layout. q_proj and k_proj rows are permuted at load
// within each head (dim k -> 2k, k + D/2 -> 2k + 1), which turns rotate-half into the
// interleaved pairs kernels::apply_rope rotates; queries and keys get the same permutation, so
// their dot products, and the output, are unchanged.
//
// Masking: transformers adds a causal mask and a key-padding mask, so a valid token never sees a
// padded one. forward() therefore runs each batch element on its valid tokens only (at their
// padded positions), which gives transformers' values for every valid token, whatever the
// padding side; padded rows of the output are zero (transformers computes values there that no
// caller uses: QwenImagePipeline drops them).
//
// Grouped-query attention: each key/value head serves num_key_value_groups consecutive query
// heads (transformers' repeat_kv); K and V are repeated per head with kernels::embedding used as
// a row gather, then attention runs over all heads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "paradiff/dist/communicator.h"
#include "paradiff/kernels/linear.h"
#include "paradiff/models/module_loader.h"
#include "paradiff/models/qwen2_5_vl/qwen2_5_vl_config.h"
#include "paradiff/models/unit_placement.h"
#include "paradiff/parallel/placement/model_device_map.h"

namespace paradiff::models::qwen2_5_vl {

// One decoder layer's parameters ("model.language_model.layers.N").
struct Qwen2_5_VLDecoderLayer {
  Tensor input_layernorm;                          // (hidden) F32
  kernels::Linear q_proj, k_proj, v_proj, o_proj;  // q/k rows permuted (see the file comment)
  Tensor post_attention_layernorm;
  kernels::Linear gate_proj, up_proj, down_proj;
};

class Qwen2_5_VLTextModel {
 public:
  // Binds "model.language_model.embed_tokens.weight", "model.language_model.layers.N.*" and
  // "model.language_model.norm.weight" (transformers' module names); from_pretrained presents
  // older checkpoints' "model.*" under these names. compute (the loader's): F32, or BF16 (GEMM and
  // attention inputs in bf16; norms, RoPE, softmax and the residual stream in fp32). Calls
  // loader.finish().
  Qwen2_5_VLTextModel(const Qwen2_5_VLTextConfig& config, ModuleLoader& loader);

  // A transformers Qwen2_5_VLForConditionalGeneration folder (QwenImagePipeline's
  // text_encoder/): config.json and model.safetensors or model.safetensors.index.json with its
  // shards. Tensor names either as transformers >= 4.52 / 5 name the modules
  // ("model.language_model.*", "model.visual.*") or as older files have them ("model.*",
  // "visual.*"); a file with both text prefixes is refused. The vision tower ("visual.*",
  // "model.visual.*") and "lm_head.weight" are left unread; any other tensor the text model does
  // not use is an error.
  static Qwen2_5_VLTextModel from_pretrained(const std::string& folder, DType compute,
                                             const std::string& variant = {});
  static Qwen2_5_VLTextModel with_random_weights(const Qwen2_5_VLTextConfig& config, DType compute,
                                                 uint64_t seed);

  // Model-level placement (--text-encoder-device-map on a Qwen-Image folder: accelerate's
  // device_map over the whole Qwen2_5_VLForConditionalGeneration, executed across the ranks of
  // `group`). The execution units, in the order forward runs them:
  // "model.language_model.embed_tokens", every "model.language_model.layers.i",
  // "model.language_model.norm". Where the map puts the vision tower and lm_head does not matter:
  // they are never run or read. This rank binds only its units; forward() is then collective
  // over `group`: every rank passes the same ids and mask; for each batch element the owner of
  // each run of consecutive units computes them on the element's valid tokens and sends the
  // hidden states (n, hidden) F32 to the next run's owner (every rank builds the rotary tables
  // from the positions); the owner of the norm broadcasts the last hidden state of the whole
  // batch, so every rank returns it. A unit on "disk" runs on rank 0, streamed from the folder's
  // safetensors for each element (read ahead while the unit before it computes, freed after it
  // runs), as the transformers' are. `group` must outlive the model.
  static std::vector<std::string> execution_units(const Qwen2_5_VLTextConfig& config);
  static Qwen2_5_VLTextModel from_pretrained_placed(const std::string& folder, DType compute,
                                                    const parallel::DeviceMap& map,
                                                    dist::Communicator& group,
                                                    const std::string& variant = {});
  bool is_placed() const { return placement_ != nullptr; }
  // Bytes of the parameters this process bound, in the dtype each was bound in (before oneDNN
  // packs them): under a placement, this rank's share of the language model.
  int64_t parameter_bytes() const { return parameter_bytes_; }

  const Qwen2_5_VLTextConfig& config() const { return config_; }
  DType compute_dtype() const { return compute_; }

  // input_ids: I64 (B, S), every id in [0, vocab_size). attention_mask: I64 (B, S) of 0 and 1,
  // or undefined for all ones. Returns the last hidden state (B, S, hidden_size) F32, after the
  // final norm: transformers' last_hidden_state, which is also hidden_states[-1], what
  // QwenImagePipeline takes. Rows where the mask is 0 are zero.
  Tensor forward(const Tensor& input_ids, const Tensor& attention_mask = Tensor()) const;

 private:
  Qwen2_5_VLTextModel(const Qwen2_5_VLTextConfig& config, ModuleLoader& loader,
                      std::shared_ptr<const UnitPlacement> placement);
  // The units from `first` to `last` (execution_units' indices) on one sequence's residual
  // stream x (n, hidden) F32 at `positions`: the embedding (unit 0) writes x from `ids`, the
  // layers update it, the norm (the last unit) writes `out`.
  // Units on "disk" are bound from `streamer` (placed models; null otherwise).
  void run_units(size_t first, size_t last, const Tensor& ids,
                 const std::vector<int64_t>& positions, Tensor& x, Tensor& out,
                 UnitStreamer* streamer) const;
  // The rotary tables (n, head_dim) F32 for n positions in the interleaved layout
  // (cos[2k] == cos[2k + 1] == cos(p * inv_freq[k])), each step in fp32 as torch computes it.
  void rotary_tables(const std::vector<int64_t>& positions, Tensor& cos, Tensor& sin) const;
  // The final hidden states (n, hidden) F32 of one sequence of n >= 1 valid tokens.
  void forward_tokens(const Tensor& ids, const std::vector<int64_t>& positions, Tensor& out) const;

  Qwen2_5_VLTextConfig config_;
  DType compute_;
  Tensor embed_tokens_;  // (vocab, hidden) in the compute dtype
  std::vector<Qwen2_5_VLDecoderLayer> layers_;
  Tensor norm_;                                      // (hidden) F32
  std::vector<float> inv_freq_;                      // (head_dim / 2), torch's fp32 values
  std::shared_ptr<const UnitPlacement> placement_;   // null: this process binds every unit
  std::shared_ptr<const WeightSource> disk_source_;  // the checkpoint "disk" units stream from
  int64_t parameter_bytes_ = 0;
};

}  // namespace paradiff::models::qwen2_5_vl
