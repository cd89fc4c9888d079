// Timed FluxTransformer2DModel forwards over a process mesh: what `paradiff transformer-forward`
// and `paradiff bench` run. The mesh is built (and the parallel config validated) before the
// model loads; with context parallelism the model runs split across the mesh's group, and the
// bytes each rank sent are counted and set beside the theoretical volume of the algorithms.
#pragma once

#include <functional>
#include <memory>

#include "paradiff/models/flux/flux_transformer.h"
#include "paradiff/parallel/device_mesh.h"

namespace paradiff::engine {

struct ForwardTiming {
  Tensor sample;                             // the full output (every rank of the group holds it)
  double median_ms = 0;                      // largest over ranks
  int64_t peak_bytes = 0;                    // largest over ranks, from the first forward on
  int64_t sent_bytes_per_rank = 0;           // per forward, largest over ranks
  int64_t expected_sent_bytes_per_rank = 0;  // the theoretical volume, largest over ranks
  double wait_ms = 0;                        // per forward, largest over ranks
  bool every_rank_sent_expected = true;      // each rank's count equals its own theoretical volume
};

class TransformerRunner {
 public:
  using Loader = std::function<models::flux::FluxTransformer2DModel()>;

  // Collective over `world`: validates `parallel` and builds the mesh, then loads the model with
  // `load` and enables context parallelism when the config has it. With context parallelism the
  // world must be one group (data-parallel copies of one forward would only repeat it); without,
  // every rank computes the whole forward.
  TransformerRunner(dist::Communicator& world, const parallel::ParallelConfig& parallel,
                    const Loader& load);

  const models::flux::FluxTransformer2DModel& model() const { return *model_; }
  parallel::DeviceMesh& mesh() { return *mesh_; }

  // `repeat` timed forwards (after one untimed warm-up when `warm_up`); collective.
  ForwardTiming time_forwards(const models::flux::FluxTransformerInputs& inputs, int repeat,
                              bool warm_up);
  // Bytes this rank must send for one forward on `inputs` (0 without context parallelism).
  int64_t expected_sent_bytes(const models::flux::FluxTransformerInputs& inputs);

 private:
  dist::Communicator& world_;
  std::shared_ptr<parallel::DeviceMesh> mesh_;
  std::unique_ptr<models::flux::FluxTransformer2DModel> model_;
};

}  // namespace paradiff::engine
