// T5EncoderModel as transformers defines it, for FluxPipeline's `text_encoder_2`: the shared token
// embedding, layers of (RMS "T5LayerNorm", self-attention without 1/√d scaling plus the relative
// position bias of layer 0 shared by all layers, RMS norm, feed-forward), a final RMS norm.
// FluxPipeline passes no attention mask, so padding tokens are attended to like any other; so
// here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "paradiff/dist/communicator.h"
#include "paradiff/kernels/linear.h"
#include "paradiff/models/module_loader.h"
#include "paradiff/models/t5/t5_config.h"
#include "paradiff/models/unit_placement.h"
#include "paradiff/parallel/placement/model_device_map.h"

namespace paradiff::models::t5 {

// One block's parameters ("encoder.block.N").
struct T5Block {
  Tensor attention_norm;  // layer.0.layer_norm.weight (d_model) F32
  kernels::Linear q, k, v, o;
  Tensor ff_norm;                  // layer.1.layer_norm.weight
  kernels::Linear wi, wi_0, wi_1;  // wi (plain) or wi_0 / wi_1 (gated)
  kernels::Linear wo;
};

class T5EncoderModel {
 public:
  // compute (the loader's): F32, or BF16 (GEMM and attention inputs in bf16; norms, softmax and
  // the residual stream in fp32). transformers keeps `wo` in fp32 only for fp16, not bf16, so
  // nothing is special here. `embedding` names the token embedding: "shared.weight", or
  // "encoder.embed_tokens.weight" (its tied twin) in checkpoints without it.
  T5EncoderModel(const T5Config& config, ModuleLoader& loader,
                 const std::string& embedding = "shared.weight");

  // A transformers folder (FluxPipeline's text_encoder_2/): config.json and model.safetensors or
  // model.safetensors.index.json with its shards. When both embedding names exist, shared.weight
  // is used (their shapes must agree); a full T5 checkpoint's decoder tensors and lm_head.weight
  // are ignored, as transformers' T5EncoderModel ignores them.
  static T5EncoderModel from_pretrained(const std::string& folder, DType compute,
                                        const std::string& variant = {});
  static T5EncoderModel with_random_weights(const T5Config& config, DType compute, uint64_t seed);

  // Model-level placement (--text-encoder-2-device-map: accelerate's device_map executed across
  // the ranks of `group`). The execution units, in the order forward runs them: the token
  // embedding ("shared", or "encoder.embed_tokens" in a checkpoint without shared.weight), every
  // "encoder.block.i", "encoder.final_layer_norm".
  static std::vector<std::string> execution_units(const T5Config& config,
                                                  const std::string& embedding = "shared");
  // This rank binds (reads, packs, holds) only the units `map` gives it; forward() is then
  // collective over `group`: every rank passes the same input_ids; block 0's owner broadcasts the
  // relative position table (num_buckets x num_heads, F32) and every rank that runs a block builds
  // the bias from it; the owner of each run of consecutive units computes them for the whole
  // batch and sends the hidden states (B, S, d_model) F32 to the next run's owner; the owner of
  // final_layer_norm broadcasts last_hidden_state, so every rank returns it. A unit on "disk" runs
  // on rank 0, streamed from the folder's safetensors at each forward (read ahead while the unit
  // before it computes, freed after it runs), as the transformers' are. `group` must outlive the
  // model.
  static T5EncoderModel from_pretrained_placed(const std::string& folder, DType compute,
                                               const parallel::DeviceMap& map,
                                               dist::Communicator& group,
                                               const std::string& variant = {});
  bool is_placed() const { return placement_ != nullptr; }
  // Bytes of the parameters this process bound, in the dtype each was bound in (before oneDNN
  // packs them): under a placement, this rank's share.
  int64_t parameter_bytes() const { return parameter_bytes_; }

  const T5Config& config() const { return config_; }
  DType compute_dtype() const { return compute_; }

  // The relative position bias (num_heads, S, S) F32 for S tokens, as every layer adds it.
  Tensor position_bias(int64_t seq_len) const;

  // input_ids: I64 (B, S), S >= 1, ids in [0, vocab_size). Returns last_hidden_state:
  // (B, S, d_model) F32 (FluxPipeline's prompt_embeds).
  Tensor forward(const Tensor& input_ids) const;

 private:
  T5EncoderModel(const T5Config& config, ModuleLoader& loader, const std::string& embedding,
                 std::shared_ptr<const UnitPlacement> placement);
  Tensor forward_placed(const Tensor& input_ids) const;
  void check_ids(const Tensor& input_ids) const;

  T5Config config_;
  DType compute_;
  Tensor shared_;                   // (vocab, d_model) in the compute dtype
  Tensor relative_attention_bias_;  // (num_buckets, num_heads) F32
  std::vector<T5Block> blocks_;
  Tensor final_layer_norm_;
  std::shared_ptr<const UnitPlacement> placement_;   // null: this process binds every unit
  std::shared_ptr<const WeightSource> disk_source_;  // the checkpoint "disk" units stream from
  std::string embedding_;                            // the token embedding's tensor name
  int64_t parameter_bytes_ = 0;
};

}  // namespace paradiff::models::t5
