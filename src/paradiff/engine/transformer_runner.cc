#include "paradiff/engine/transformer_runner.h"

#include <algorithm>
#include <vector>

#include "paradiff/core/logging.h"
#include "paradiff/core/memory.h"
#include "paradiff/core/process_memory.h"
#include "paradiff/core/timer.h"
#include "paradiff/dist/host_communicator.h"
#include "paradiff/io/json_config.h"
#include "paradiff/kernels/gemm_mode.h"
#include "paradiff/models/weight_source.h"
#include "paradiff/parallel/communication_volume.h"
#include "paradiff/parallel/sequence_sharding.h"

namespace paradiff::engine {

namespace {

using models::flux::FluxTransformer2DModel;
using models::flux::FluxTransformerInputs;
using models::qwen_image::QwenImageTransformer2DModel;
using models::qwen_image::QwenImageTransformerInputs;

// The inputs of the loaded model's kind, or an error naming both kinds.
template <typename Inputs>
const Inputs& inputs_for(const TransformerModel& model, const TransformerInputs& inputs) {
  const Inputs* in = std::get_if<Inputs>(&inputs);
  PARADIFF_CHECK(in != nullptr, "the inputs are not ", class_name(model), " inputs");
  return *in;
}

// One attention's bytes times the calls (its tensors in `activations`, the dtype the model's
// activations take: kernels::activation_dtype_for), plus the output's all-gather, for one batch
// element whose attention sequence is split as `named` is by `plan`.
int64_t element_sent_bytes(parallel::DeviceMesh& mesh, const parallel::ContextParallelPlan& plan,
                           const parallel::NamedTensors& named, int64_t attention_calls,
                           int64_t heads, int64_t head_dim, DType activations, int64_t image_tokens,
                           int64_t output_channels, int64_t batch) {
  dist::Communicator& group = mesh.context_parallel();
  const auto tokens = parallel::attention_tokens_per_rank(plan, named, group.size());
  const int64_t per_attention =
      parallel::attention_sent_bytes(mesh.context_parallel_config(), group.rank(), tokens, heads,
                                     head_dim, dtype_size(activations));
  const int64_t local_sample = batch *
                               parallel::shard_of(image_tokens, group.size(), group.rank()).length *
                               output_channels * static_cast<int64_t>(sizeof(float));
  return attention_calls * per_attention + parallel::gather_sent_bytes(local_sample, group.size());
}

// FLUX splits the whole batch at once: every block's attention runs once per batch element.
int64_t model_sent_bytes(parallel::DeviceMesh& mesh, const FluxTransformer2DModel& model,
                         const FluxTransformerInputs& in) {
  const auto& config = model.config();
  const int64_t batch = in.hidden_states.dim(0), image = in.hidden_states.dim(1);
  return element_sent_bytes(mesh, FluxTransformer2DModel::context_parallel_plan(), in.to_named(),
                            batch * (config.num_layers + config.num_single_layers),
                            config.num_attention_heads, config.attention_head_dim,
                            kernels::activation_dtype_for(model.compute_dtype()), image,
                            config.output_channels(), batch);
}

// Qwen-Image runs one context-parallel forward per batch element on its valid text tokens only
// (masked ones are dropped first, see qwen_image_transformer.h), so each element's sequence, and
// with it the split, can differ.
int64_t model_sent_bytes(parallel::DeviceMesh& mesh, const QwenImageTransformer2DModel& model,
                         const QwenImageTransformerInputs& in) {
  const auto& config = model.config();
  const int64_t batch = in.hidden_states.dim(0), image = in.hidden_states.dim(1);
  const int64_t text = in.encoder_hidden_states.dim(1);
  const Tensor mask = in.encoder_hidden_states_mask.defined()
                          ? in.encoder_hidden_states_mask.as(DType::F32)
                          : Tensor();
  int64_t sent = 0;
  for (int64_t b = 0; b < batch; ++b) {
    int64_t valid = text;
    if (mask.defined())
      valid = std::count_if(mask.data<float>() + b * text, mask.data<float>() + (b + 1) * text,
                            [](float m) { return m != 0.0f; });
    // Only the split dimension's length matters to the plan's token count.
    const parallel::NamedTensors named{
        {"hidden_states", Tensor::empty({1, image, 1}, DType::F32)},
        {"encoder_hidden_states", Tensor::empty({1, valid, 1}, DType::F32)}};
    sent += element_sent_bytes(
        mesh, QwenImageTransformer2DModel::context_parallel_plan(), named, config.num_layers,
        config.num_attention_heads, config.attention_head_dim,
        kernels::activation_dtype_for(model.compute_dtype()), image, config.output_channels(), 1);
  }
  return sent;
}

}  // namespace

constexpr const char* kFlux = "FluxTransformer2DModel";
constexpr const char* kQwenImage = "QwenImageTransformer2DModel";

std::string class_name(const TransformerModel& model) {
  return std::holds_alternative<FluxTransformer2DModel>(model) ? kFlux : kQwenImage;
}

std::string transformer_class_name(const std::string& folder) {
  const auto json = JsonConfig::load(models::model_config_path(folder, "transformer folder"));
  const std::string cls = json.get_string("_class_name", kFlux);
  PARADIFF_CHECK(cls == kFlux || cls == kQwenImage, json.name(), ": _class_name \"", cls,
                 "\" is not a transformer paradiff runs; supported: ", kFlux, ", ", kQwenImage);
  return cls;
}

TransformerModel load_transformer(const std::string& folder, DType compute) {
  if (transformer_class_name(folder) == kFlux)
    return FluxTransformer2DModel::from_pretrained(folder, compute);
  return QwenImageTransformer2DModel::from_pretrained(folder, compute);
}

TransformerInputs load_transformer_inputs(const std::string& class_name,
                                          const std::string& safetensors_path) {
  if (class_name == kFlux) return FluxTransformerInputs::load(safetensors_path);
  PARADIFF_CHECK(class_name == kQwenImage, "no inputs for transformer class '", class_name,
                 "'; supported: ", kFlux, ", ", kQwenImage);
  return QwenImageTransformerInputs::load(safetensors_path);
}

TransformerRunner::TransformerRunner(dist::Communicator& world,
                                     const parallel::ParallelConfig& parallel, const Loader& load,
                                     dist::WeightSharing sharing, int fully_shard_degree)
    : TransformerRunner(world, parallel,
                        MeshLoader([&load](parallel::DeviceMesh&) { return load(); }), sharing,
                        fully_shard_degree) {}

TransformerRunner::TransformerRunner(dist::Communicator& world,
                                     const parallel::ParallelConfig& parallel,
                                     const MeshLoader& load, dist::WeightSharing sharing,
                                     int fully_shard_degree)
    : world_(world) {
  mesh_ = std::make_shared<parallel::DeviceMesh>(world, parallel);
  PARADIFF_CHECK(parallel.cfg_degree == 1,
                 "a transformer forward has no CFG branches: ", "cfg_degree must be 1, got ",
                 parallel.cfg_degree);
  PARADIFF_CHECK(!parallel.context_parallel_config || mesh_->size(parallel::MeshDim::Data) == 1,
                 "a transformer forward runs one input: ring_degree x ulysses_degree (",
                 parallel.ring_degree() * parallel.ulysses_degree(),
                 ") must equal the number of processes (", world.size(), ")");
  host_ = dist::host_communicator(world);
  std::unique_ptr<dist::Communicator> shard_group;
  bool share_slices = false;
  if (fully_shard_degree != 1) {
    // Checked before any weight is read. The ranks of a host share their slices only when every
    // shard group has one rank per host (sharding across hosts): they then hold the same ones.
    shard_group = dist::fully_shard_group(mesh_->context_parallel(), fully_shard_degree);
    const bool across_hosts = dist::shard_groups_span_hosts(*shard_group, world);
    PARADIFF_CHECK(sharing != dist::WeightSharing::On || host_->size() == 1 || across_hosts,
                   "--fully-shard-degree ", fully_shard_degree,
                   " with --share-weights on needs "
                   "shard groups of one rank per host (sharding across hosts), but some ranks of "
                   "one shard group are on one host (",
                   host_->size(), " ranks on this host): use --share-weights off");
    share_slices = sharing != dist::WeightSharing::Off && host_->size() > 1 && across_hosts;
    if (!share_slices) sharing = dist::WeightSharing::Off;
  }
  LoadingMemoryScope loading;  // until the end of the constructor
  weights_ = dist::load_with_host_weights(*host_, sharing, [&] {
    if (!shard_group) {
      model_ = std::make_unique<TransformerModel>(load(*mesh_));
      return;
    }
    sharded_ = dist::load_fully_sharded(
        std::move(shard_group), [&] { model_ = std::make_unique<TransformerModel>(load(*mesh_)); },
        share_slices);
  });
  // One copy of the model's prepared weights; this rank holds held_weight_bytes_ of them (the
  // arena holds the slices too when they are shared).
  held_weight_bytes_ = weights_.weight_bytes;
  if (sharded_) {
    const int64_t in_arena = sharded_->slices_outside() ? sharded_->shard_bytes() : 0;
    held_weight_bytes_ += sharded_->shard_bytes() - in_arena + sharded_->buffer_bytes();
    weights_.weight_bytes += sharded_->block_bytes() - in_arena;
  }
  if (weights_.arena->private_bytes() > 0)
    log_warning("rank ", world.rank(), " loaded ", weights_.arena->private_bytes(),
                " bytes of weights the host's first rank did not: those are not shared");
  if (mesh_->context_parallel_enabled())
    std::visit([this](auto& model) { model.enable_parallelism(mesh_); }, *model_);
}

void TransformerRunner::validate_inputs(const TransformerInputs& inputs) const {
  if (const auto* flux = std::get_if<FluxTransformer2DModel>(model_.get()))
    return flux->validate_inputs(inputs_for<FluxTransformerInputs>(*model_, inputs));
  std::get<QwenImageTransformer2DModel>(*model_).validate_inputs(
      inputs_for<QwenImageTransformerInputs>(*model_, inputs));
}

Tensor TransformerRunner::forward(const TransformerInputs& inputs) const {
  if (const auto* flux = std::get_if<FluxTransformer2DModel>(model_.get()))
    return flux->forward(inputs_for<FluxTransformerInputs>(*model_, inputs));
  return std::get<QwenImageTransformer2DModel>(*model_).forward(
      inputs_for<QwenImageTransformerInputs>(*model_, inputs));
}

int64_t TransformerRunner::expected_sent_bytes(const TransformerInputs& inputs) {
  if (!mesh_->context_parallel_enabled()) return 0;
  if (const auto* flux = std::get_if<FluxTransformer2DModel>(model_.get()))
    return model_sent_bytes(*mesh_, *flux, inputs_for<FluxTransformerInputs>(*model_, inputs));
  return model_sent_bytes(*mesh_, std::get<QwenImageTransformer2DModel>(*model_),
                          inputs_for<QwenImageTransformerInputs>(*model_, inputs));
}

ForwardTiming TransformerRunner::time_forwards(const TransformerInputs& in, int repeat,
                                               bool warm_up) {
  ForwardTiming timing;
  // Peak from here on: the resident weights plus what the forwards allocate (load-time
  // transients such as unconverted weights are not part of a step).
  reset_peak_bytes();
  if (warm_up) forward(in);  // primitive creation, page faults
  mesh_->reset_comm_stats();
  if (sharded_) sharded_->reset_stats();
  std::vector<double> ms;
  const int forwards = std::max(1, repeat);
  ProcessMemory high;
  for (int i = 0; i < forwards; ++i) {
    world_.barrier();  // on the world, not a mesh communicator: not counted
    Stopwatch sw;
    timing.sample = forward(in);
    ms.push_back(sw.milliseconds());
    const ProcessMemory now = process_memory();
    high.pss_bytes = std::max(high.pss_bytes, now.pss_bytes);
    high.weights_pss_bytes = std::max(high.weights_pss_bytes, now.weights_pss_bytes);
    high.file_pss_bytes = std::max(high.file_pss_bytes, now.file_pss_bytes);
    high.peak_rss_bytes = now.peak_rss_bytes;
  }
  std::sort(ms.begin(), ms.end());
  const auto stats = mesh_->comm_stats();
  double reduced[2] = {ms[ms.size() / 2], stats.wait_seconds * 1e3 / forwards};
  world_.allreduce(reduced, 2, dist::ReduceType::F64, dist::ReduceOp::Max);
  const int64_t sent = stats.bytes_sent / forwards, expected = expected_sent_bytes(in);
  int64_t counts[4] = {peak_bytes() + held_weight_bytes_, sent, expected, sent != expected ? 1 : 0};
  world_.allreduce(counts, 4, dist::ReduceType::I64, dist::ReduceOp::Max);
  timing.median_ms = reduced[0];
  timing.wait_ms = reduced[1];
  timing.peak_bytes = counts[0];
  timing.sent_bytes_per_rank = counts[1];
  timing.expected_sent_bytes_per_rank = counts[2];
  timing.every_rank_sent_expected = counts[3] == 0;

  int64_t host_sums[3] = {high.pss_bytes, high.weights_pss_bytes, high.file_pss_bytes};
  host_->allreduce(host_sums, 3, dist::ReduceType::I64, dist::ReduceOp::Sum);
  int64_t memory[10] = {high.pss_bytes,        high.weights_pss_bytes,
                        high.peak_rss_bytes,   host_sums[0],
                        host_sums[1],          host_->size(),
                        weights_.weight_bytes, weights_.shared ? 1 : 0,
                        high.file_pss_bytes,   host_sums[2]};
  world_.allreduce(memory, 10, dist::ReduceType::I64, dist::ReduceOp::Max);
  timing.rank_pss_bytes = memory[0];
  timing.rank_weights_pss_bytes = memory[1];
  timing.rank_peak_rss_bytes = memory[2];
  timing.host_pss_bytes = memory[3];
  timing.host_weights_pss_bytes = memory[4];
  timing.host_ranks = static_cast<int>(memory[5]);
  timing.weight_bytes = memory[6];
  timing.shared_weights = memory[7] == 1;
  timing.rank_file_pss_bytes = memory[8];
  timing.host_file_pss_bytes = memory[9];

  ForwardTiming::Rank mine{peak_bytes() + weights_.weight_bytes,
                           sent,
                           static_cast<int64_t>(stats.wait_seconds * 1e6 / forwards),
                           weights_.weight_bytes,
                           high.pss_bytes,
                           high.weights_pss_bytes,
                           high.peak_rss_bytes,
                           host_sums[0],
                           host_sums[1]};
  timing.ranks.resize(static_cast<size_t>(world_.size()));
  std::vector<size_t> counts_per_rank(timing.ranks.size(), sizeof mine), offsets;
  for (size_t r = 0; r < timing.ranks.size(); ++r) offsets.push_back(r * sizeof mine);
  world_.allgatherv(&mine, sizeof mine, timing.ranks.data(), counts_per_rank, offsets);
  if (sharded_) {
    int64_t shard[4] = {sharded_->gathered_bytes() / forwards, sharded_->block_bytes(),
                        sharded_->shard_bytes(), sharded_->buffer_bytes()};
    world_.allreduce(shard, 4, dist::ReduceType::I64, dist::ReduceOp::Max);
    double wait_ms = sharded_->wait_seconds() * 1e3 / forwards;
    world_.allreduce(&wait_ms, 1, dist::ReduceType::F64, dist::ReduceOp::Max);
    timing.gather_wait_ms = wait_ms;
    timing.fully_shard_degree = sharded_->degree();
    timing.gathered_bytes_per_rank = shard[0];
    timing.block_weight_bytes = shard[1];
    timing.shard_bytes = shard[2];
    timing.block_buffer_bytes = shard[3];
  }
  return timing;
}

}  // namespace paradiff::engine
