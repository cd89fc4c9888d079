#include "paradiff/engine/engine.h"

#include "paradiff/core/logging.h"
#include "paradiff/core/memory.h"
#include "paradiff/core/timer.h"
#include "paradiff/dist/tensor_broadcast.h"
#include "paradiff/dist/tensor_transfer.h"
#include "paradiff/parallel/data_parallel.h"
#include "paradiff/pipeline/pipeline_registry.h"

namespace paradiff::engine {

namespace {

// Tags of the messages that carry results from each replica's first rank to world rank 0.
constexpr int kIndicesTag = 101, kLatentsTag = 102, kImagesTag = 103;

pipeline::StepCallback step_callback(const ProgressCallback& on_step,
                                     const std::vector<int64_t>& prompts) {
  if (!on_step) return {};
  return [on_step, prompts](const pipeline::StepProgress& p) { return on_step(p, prompts); };
}

}  // namespace

Engine::Engine(dist::Communicator& world, const EngineOptions& options)
    : world_(world), options_(options) {
  // The config is validated (inside the mesh) before the folder is even opened.
  mesh_ = std::make_shared<parallel::DeviceMesh>(world, options.parallel);
  pipeline_ = pipeline::load_pipeline(
      options.model,
      pipeline::PipelineRuntime{options.compute, mesh_, options.cache_policy, options.variant});
}

pipeline::GenerationOptions Engine::resolve(const GenerationRequest& request) const {
  request.validate();
  return pipeline_->resolve(request.options());
}

GenerationResult Engine::run(const GenerationRequest& request, const ProgressCallback& on_step) {
  const pipeline::GenerationOptions options = resolve(request);
  const int64_t per_prompt = request.num_images_per_prompt;
  // The work items are (prompt, image) pairs in diffusers' prompt-major order: item i is image
  // i % n of prompt i / n. Replicas split the items, so several images of one prompt may run
  // on different replicas.
  const int64_t count = static_cast<int64_t>(request.prompt.size()) * per_prompt;
  const int replicas = this->replicas(), replica = mesh_->index(parallel::MeshDim::Data);
  dist::Communicator& group = mesh_->replica();
  const bool group_root = group.rank() == 0;
  const auto mine =
      parallel::split_between_processes(count, replicas, replica, request.apply_padding);
  const int64_t real = parallel::real_items(count, replicas, replica);

  if (!request.negative_prompt.empty() && !pipeline_->uses_true_cfg(options, true) &&
      world_.rank() == 0)
    log_warning("negative_prompt is ignored: true classifier-free guidance runs only with ",
                "true_cfg_scale > 1 (got ", options.true_cfg_scale, ")");

  GenerationResult result;
  result.stats.replicas = replicas;
  result.stats.prompts_here = static_cast<int64_t>(mine.size());
  Stopwatch total;
  Tensor latents, images;
  if (!mine.empty()) {
    // This replica's distinct prompts go through the encoder as one batch (each once, however
    // many of its images run here), so each model runs once.
    std::vector<std::string> prompts, negatives;
    std::vector<int64_t> item_prompts, rows;  // per item: its prompt, its row in `prompts`
    const bool cfg = pipeline_->uses_true_cfg(options, !request.negative_prompt.empty());
    for (int64_t item : mine) {
      const int64_t index = item / per_prompt;
      // `mine` is contiguous (padding repeats its last item), so a prompt's items are adjacent.
      if (item_prompts.empty() || item_prompts.back() != index) {
        prompts.push_back(request.prompt[index]);
        if (cfg) negatives.push_back(request.negative_prompt_for(static_cast<size_t>(index)));
      }
      item_prompts.push_back(index);
      rows.push_back(static_cast<int64_t>(prompts.size()) - 1);
    }
    Stopwatch stage;
    pipeline::Conditioning conditioning;
    if (group_root) conditioning = pipeline_->encode_prompt(prompts, negatives, options);
    dist::broadcast_tensors(group, conditioning, 0);
    // One conditioning row per item, as diffusers repeats each prompt's embeddings (and mask)
    // num_images_per_prompt times; skipped when the rows already are the items.
    if (rows.size() != prompts.size()) {
      for (auto& [name, tensor] : conditioning) {
        std::vector<Tensor> parts;
        for (int64_t row : rows) parts.push_back(tensor.slice(row, 1));
        tensor = concat(parts, 0);
      }
    }
    result.stats.encode_seconds = stage.seconds();

    stage.restart();
    // Every prompt starts from the seed's latents, as one diffusers call per prompt would: image
    // k from row k of one draw of num_images_per_prompt rows.
    const Tensor start = pipeline_->prepare_latents(options, per_prompt);
    std::vector<Tensor> starts;
    for (int64_t item : mine) starts.push_back(start.slice(item % per_prompt, 1));
    latents = pipeline_->denoise(conditioning, concat(starts, 0), options,
                                 step_callback(on_step, item_prompts));
    result.stats.denoise_seconds = stage.seconds();
    result.stats.steps = options.num_inference_steps;

    stage.restart();
    if (group_root && real > 0 && request.output_type != OutputType::Latent)
      images = pipeline_->decode(latents.slice(0, real), options);
    result.stats.decode_seconds = stage.seconds();
  }

  // Each replica's first rank hands its real results to world rank 0 (itself for replica 0).
  if (group_root) {
    dist::Communicator& roots = mesh_->comm(parallel::MeshDim::Data);
    auto add = [&](const Tensor& items, const Tensor& lat, const Tensor& img) {
      for (int64_t k = 0; k < items.numel(); ++k) {
        const int64_t item = items.data<int64_t>()[k];
        result.images.push_back({item / per_prompt, item % per_prompt, lat.slice(k, 1),
                                 img.defined() ? img.select(k) : Tensor()});
      }
    };
    Tensor items = Tensor::empty({real}, DType::I64);
    for (int64_t k = 0; k < real; ++k) items.data<int64_t>()[k] = mine[k];
    const Tensor my_latents =
        real > 0 ? latents.slice(0, real) : Tensor::empty({0, 1, 1}, DType::F32);
    const bool decoded = request.output_type != OutputType::Latent;
    if (roots.rank() == 0) {
      if (real > 0) add(items, my_latents, images);
      for (int d = 1; d < roots.size(); ++d) {
        const Tensor their_items = dist::receive_tensor(roots, d, kIndicesTag);
        if (their_items.numel() == 0) continue;
        const Tensor their_latents = dist::receive_tensor(roots, d, kLatentsTag);
        const Tensor their_images = decoded ? dist::receive_tensor(roots, d, kImagesTag) : Tensor();
        add(their_items, their_latents, their_images);
      }
    } else {
      dist::send_tensor(roots, items, 0, kIndicesTag);
      if (real > 0) {
        dist::send_tensor(roots, my_latents, 0, kLatentsTag);
        if (decoded) dist::send_tensor(roots, images, 0, kImagesTag);
      }
    }
  }

  int64_t peak = peak_bytes();
  world_.allreduce(&peak, 1, dist::ReduceType::I64, dist::ReduceOp::Max);
  double stage_s[3] = {result.stats.encode_seconds, result.stats.denoise_seconds,
                       result.stats.decode_seconds};
  world_.allreduce(stage_s, 3, dist::ReduceType::F64, dist::ReduceOp::Max);
  int64_t steps = result.stats.steps;
  world_.allreduce(&steps, 1, dist::ReduceType::I64, dist::ReduceOp::Max);
  world_.barrier();
  result.stats.peak_bytes = peak;
  result.stats.encode_seconds = stage_s[0];
  result.stats.denoise_seconds = stage_s[1];
  result.stats.decode_seconds = stage_s[2];
  result.stats.steps = steps;
  result.stats.total_seconds = total.seconds();
  return result;
}

void Engine::require_one_replica(const char* stage) const {
  PARADIFF_CHECK(replicas() == 1, stage, " makes one image: cfg_degree x ring_degree x ",
                 "ulysses_degree (", options_.parallel.replica_degree(),
                 ") must equal the number of processes (", world_.size(), ")");
}

pipeline::Conditioning Engine::encode_prompt(const GenerationRequest& request) {
  const pipeline::GenerationOptions options = resolve(request);
  if (world_.rank() != 0) return {};
  std::vector<std::string> negatives;
  if (pipeline_->uses_true_cfg(options, !request.negative_prompt.empty()))
    for (size_t i = 0; i < request.prompt.size(); ++i)
      negatives.push_back(request.negative_prompt_for(i));
  return pipeline_->encode_prompt(request.prompt, negatives, options);
}

Tensor Engine::denoise(pipeline::Conditioning conditioning, Tensor latents,
                       const GenerationRequest& request, const ProgressCallback& on_step) {
  require_one_replica("denoise");
  const pipeline::GenerationOptions options = resolve(request);
  dist::broadcast_tensors(world_, conditioning, 0);
  int64_t given = latents.defined() ? 1 : 0;
  world_.broadcast(&given, sizeof(given), 0);
  if (given) {
    dist::broadcast_tensor(world_, latents, 0);
  } else {
    latents = pipeline_->prepare_latents(options);
  }
  Tensor out = pipeline_->denoise(conditioning, latents, options, step_callback(on_step, {0}));
  return world_.rank() == 0 ? out : Tensor();
}

Tensor Engine::decode(const Tensor& latents, const GenerationRequest& request) {
  const pipeline::GenerationOptions options = resolve(request);
  if (world_.rank() != 0) return {};
  return pipeline_->decode(latents, options);
}

}  // namespace paradiff::engine
