#include "paradiff/engine/transformer_runner.h"

#include <algorithm>
#include <vector>

#include "paradiff/core/memory.h"
#include "paradiff/core/timer.h"
#include "paradiff/parallel/communication_volume.h"
#include "paradiff/parallel/sequence_sharding.h"

namespace paradiff::engine {

TransformerRunner::TransformerRunner(dist::Communicator& world,
                                     const parallel::ParallelConfig& parallel, const Loader& load)
    : world_(world) {
  mesh_ = std::make_shared<parallel::DeviceMesh>(world, parallel);
  PARADIFF_CHECK(parallel.cfg_degree == 1,
                 "a transformer forward has no CFG branches: ", "cfg_degree must be 1, got ",
                 parallel.cfg_degree);
  PARADIFF_CHECK(!parallel.context_parallel_config || mesh_->size(parallel::MeshDim::Data) == 1,
                 "a transformer forward runs one input: ring_degree x ulysses_degree (",
                 parallel.ring_degree() * parallel.ulysses_degree(),
                 ") must equal the number of processes (", world.size(), ")");
  model_ = std::make_unique<models::flux::FluxTransformer2DModel>(load());
  if (mesh_->context_parallel_enabled()) model_->enable_parallelism(mesh_);
}

int64_t TransformerRunner::expected_sent_bytes(const models::flux::FluxTransformerInputs& in) {
  if (!mesh_->context_parallel_enabled()) return 0;
  const auto& config = model_->config();
  const auto& plan = models::flux::FluxTransformer2DModel::context_parallel_plan();
  dist::Communicator& group = mesh_->context_parallel();
  const auto tokens = parallel::attention_tokens_per_rank(plan, in.to_named(), group.size());
  const int64_t per_attention = parallel::attention_sent_bytes(
      mesh_->context_parallel_config(), group.rank(), tokens, config.num_attention_heads,
      config.attention_head_dim, dtype_size(model_->compute_dtype()));
  const int64_t batch = in.hidden_states.dim(0), image = in.hidden_states.dim(1);
  const int64_t attention_calls = batch * (config.num_layers + config.num_single_layers);
  const int64_t local_sample = batch *
                               parallel::shard_of(image, group.size(), group.rank()).length *
                               config.output_channels() * static_cast<int64_t>(sizeof(float));
  return attention_calls * per_attention + parallel::gather_sent_bytes(local_sample, group.size());
}

ForwardTiming TransformerRunner::time_forwards(const models::flux::FluxTransformerInputs& in,
                                               int repeat, bool warm_up) {
  ForwardTiming timing;
  // Peak from here on: the resident weights plus what the forwards allocate (load-time
  // transients such as unconverted weights are not part of a step).
  reset_peak_bytes();
  if (warm_up) model_->forward(in);  // primitive creation, page faults
  mesh_->reset_comm_stats();
  std::vector<double> ms;
  const int forwards = std::max(1, repeat);
  for (int i = 0; i < forwards; ++i) {
    world_.barrier();  // on the world, not a mesh communicator: not counted
    Stopwatch sw;
    timing.sample = model_->forward(in);
    ms.push_back(sw.milliseconds());
  }
  std::sort(ms.begin(), ms.end());
  const auto stats = mesh_->comm_stats();
  double reduced[2] = {ms[ms.size() / 2], stats.wait_seconds * 1e3 / forwards};
  world_.allreduce(reduced, 2, dist::ReduceType::F64, dist::ReduceOp::Max);
  const int64_t sent = stats.bytes_sent / forwards, expected = expected_sent_bytes(in);
  int64_t counts[4] = {peak_bytes(), sent, expected, sent != expected ? 1 : 0};
  world_.allreduce(counts, 4, dist::ReduceType::I64, dist::ReduceOp::Max);
  timing.median_ms = reduced[0];
  timing.wait_ms = reduced[1];
  timing.peak_bytes = counts[0];
  timing.sent_bytes_per_rank = counts[1];
  timing.expected_sent_bytes_per_rank = counts[2];
  timing.every_rank_sent_expected = counts[3] == 0;
  return timing;
}

}  // namespace paradiff::engine
