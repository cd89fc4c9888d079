// Timed transformer forwards over a process mesh: what `paradiff transformer-forward` and
// `paradiff bench` run, for FluxTransformer2DModel and QwenImageTransformer2DModel. The mesh is
// built (and the parallel config validated) before the model loads; with context parallelism the
// model runs split across the mesh's group, and the bytes each rank sent are counted and set
// beside the theoretical volume of the algorithms.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "paradiff/dist/host_weights.h"
#include "paradiff/dist/sharded_block_weights.h"
#include "paradiff/models/flux/flux_transformer.h"
#include "paradiff/models/qwen_image/qwen_image_transformer.h"
#include "paradiff/parallel/device_mesh.h"

namespace paradiff::engine {

// The transformers a runner can time, and their inputs (the alternatives pair up by index). A
// variant rather than a virtual interface: the models stay plain values, and the two places that
// differ (the forward's inputs and its theoretical communication) are spelled out per model in
// transformer_runner.cc.
using TransformerModel = std::variant<models::flux::FluxTransformer2DModel,
                                      models::qwen_image::QwenImageTransformer2DModel>;
using TransformerInputs = std::variant<models::flux::FluxTransformerInputs,
                                       models::qwen_image::QwenImageTransformerInputs>;

// diffusers' `_class_name` of the model ("FluxTransformer2DModel", "QwenImageTransformer2DModel").
std::string class_name(const TransformerModel& model);

// The `_class_name` in a diffusers transformer folder's config.json, checked to be one of the
// classes above (an error names it and the supported ones). A config.json without the key is
// read as FluxTransformer2DModel, which is what paradiff assumed before it ran other models.
std::string transformer_class_name(const std::string& folder);
// Loads a diffusers transformer folder as the class its config.json names.
TransformerModel load_transformer(const std::string& folder, DType compute);
// The inputs of `class_name` stored in a safetensors file (FluxTransformerInputs::load or
// QwenImageTransformerInputs::load).
TransformerInputs load_transformer_inputs(const std::string& class_name,
                                          const std::string& safetensors_path);

struct ForwardTiming {
  Tensor sample;                             // the full output (every rank of the group holds it)
  double median_ms = 0;                      // largest over ranks
  int64_t peak_bytes = 0;                    // largest over ranks, from the first forward on
  int64_t sent_bytes_per_rank = 0;           // per forward, largest over ranks
  int64_t expected_sent_bytes_per_rank = 0;  // the theoretical volume, largest over ranks
  double wait_ms = 0;                        // per forward, largest over ranks
  bool every_rank_sent_expected = true;      // each rank's count equals its own theoretical volume
  // What the kernel says (core/process_memory.h), sampled after each timed forward (freed
  // activations stay in the process, see core/memory.cc, so this is the forwards' high mark).
  // Per rank: the largest over ranks; per host: summed over a host's ranks, largest over hosts.
  int64_t weight_bytes = 0;  // the prepared weights of one copy of the model
  int64_t rank_pss_bytes = 0, rank_weights_pss_bytes = 0, rank_peak_rss_bytes = 0;
  int64_t host_pss_bytes = 0, host_weights_pss_bytes = 0;
  // Of the PSS above, the pages of mapped checkpoint files ("disk" units streamed in place):
  // reclaimable by the kernel, unlike the rest.
  int64_t rank_file_pss_bytes = 0, host_file_pss_bytes = 0;
  int host_ranks = 1;           // ranks on the largest host
  bool shared_weights = false;  // the host's ranks shared one copy of the weights
  // Each rank's own figures (by world rank), for runs where the ranks differ (a placement).
  struct Rank {
    int64_t peak_bytes = 0, sent_bytes = 0, wait_us = 0, weight_bytes = 0;
    int64_t pss_bytes = 0, weights_pss_bytes = 0, peak_rss_bytes = 0;
    int64_t host_pss_bytes = 0, host_weights_pss_bytes = 0;  // of this rank's host, summed
  };
  std::vector<Rank> ranks;
  // --fully-shard-degree (1: not sharded): bytes each rank received per forward gathering block
  // weights (largest over ranks), and the block weights of one copy, this rank's shard of them
  // and its two block buffers.
  int fully_shard_degree = 1;
  int64_t gathered_bytes_per_rank = 0;
  double gather_wait_ms = 0;  // per forward, largest over ranks: blocked waiting for a gather
  int64_t block_weight_bytes = 0, shard_bytes = 0, block_buffer_bytes = 0;
};

class TransformerRunner {
 public:
  using Loader = std::function<TransformerModel()>;

  // Collective over `world`: validates `parallel` and builds the mesh, then loads the model with
  // `load` and enables context parallelism when the config has it. With context parallelism the
  // world must be one group (data-parallel copies of one forward would only repeat it); without,
  // every rank computes the whole forward.
  // `sharing`: whether the ranks of one host share one copy of the prepared weights
  // (dist/host_weights.h). `fully_shard_degree` N > 1: the transformer blocks' prepared weights
  // are split over N ranks of the context-parallel group (dist/sharded_block_weights.h).
  TransformerRunner(dist::Communicator& world, const parallel::ParallelConfig& parallel,
                    const Loader& load, dist::WeightSharing sharing = dist::WeightSharing::Auto,
                    int fully_shard_degree = 1);
  // The same with a loader that needs the mesh (a placed model binds its units over the stage
  // communicator; `parallel.stage_degree` sets the stages).
  using MeshLoader = std::function<TransformerModel(parallel::DeviceMesh&)>;
  TransformerRunner(dist::Communicator& world, const parallel::ParallelConfig& parallel,
                    const MeshLoader& load, dist::WeightSharing sharing,
                    int fully_shard_degree = 1);

  const TransformerModel& model() const { return *model_; }
  const dist::HostWeights& weights() const { return weights_; }
  // The block weights' store under --fully-shard-degree, else null.
  const dist::ShardedBlockWeights* sharded_weights() const { return sharded_.get(); }
  dist::Communicator& host() { return *host_; }
  parallel::DeviceMesh& mesh() { return *mesh_; }

  // Checks that `inputs` are the loaded model's kind and fit its config; throws naming the input.
  void validate_inputs(const TransformerInputs& inputs) const;
  // `repeat` timed forwards (after one untimed warm-up when `warm_up`); collective.
  ForwardTiming time_forwards(const TransformerInputs& inputs, int repeat, bool warm_up);
  // Bytes this rank must send for one forward on `inputs` (0 without context parallelism).
  int64_t expected_sent_bytes(const TransformerInputs& inputs);

 private:
  Tensor forward(const TransformerInputs& inputs) const;

  dist::Communicator& world_;
  std::shared_ptr<parallel::DeviceMesh> mesh_;
  std::unique_ptr<dist::Communicator> host_;
  dist::HostWeights weights_;
  std::shared_ptr<dist::ShardedBlockWeights> sharded_;
  int64_t held_weight_bytes_ = 0;  // the prepared weights this rank holds
  std::unique_ptr<TransformerModel> model_;
};

}  // namespace paradiff::engine
