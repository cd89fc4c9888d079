#include "paradiff/engine/engine.h"

#include <cstdio>
#include <random>

#include "paradiff/core/logging.h"
#include "paradiff/core/memory.h"
#include "paradiff/core/process_memory.h"
#include "paradiff/core/timer.h"
#include "paradiff/dist/host_communicator.h"
#include "paradiff/dist/host_names.h"
#include "paradiff/dist/sharded_block_weights.h"
#include "paradiff/dist/tensor_broadcast.h"
#include "paradiff/dist/tensor_transfer.h"
#include "paradiff/engine/placement_plan.h"
#include "paradiff/kernels/weight_storage.h"
#include "paradiff/parallel/data_parallel.h"
#include "paradiff/pipeline/pipeline_registry.h"

namespace paradiff::engine {

namespace {

// Tags of the messages that carry results from each replica's first rank to world rank 0.
constexpr int kIndicesTag = 101, kLatentsTag = 102, kImagesTag = 103;

// With `high`, also keeps there the largest PSS seen after a step (the transformer and the
// step's activations are held then; a one-shot run frees the transformer when the loop ends).
pipeline::StepCallback step_callback(const ProgressCallback& on_step,
                                     const std::vector<int64_t>& prompts,
                                     ProcessMemory* high = nullptr) {
  if (!on_step && high == nullptr) return {};
  return [on_step, prompts, high](const pipeline::StepProgress& p) {
    if (high != nullptr) {
      const ProcessMemory now = process_memory();
      if (now.pss_bytes > high->pss_bytes) *high = now;
    }
    return on_step ? on_step(p, prompts) : true;
  };
}

}  // namespace

Engine::Engine(dist::Communicator& world, const EngineOptions& options)
    : world_(world), options_(options) {
  kernels::check_weight_storage(options.transformer_storage, options.compute);
  const bool model_map =
      !options.transformer_device_map.empty() || !options.vae_device_map.empty() ||
      !options.text_encoder_2_device_map.empty() || !options.text_encoder_device_map.empty();
  const bool pipeline_map = !options.device_map.empty() && options.device_map != "cpu";
  auto& config = options_.parallel;
  PARADIFF_CHECK(config.stage_degree == 1 || model_map || pipeline_map, "placement stages (",
                 config.stage_degree,
                 ") need a map to deal over them: --device-map balanced or "
                 "--transformer-device-map");
  if ((model_map || pipeline_map) && config.stage_degree == 1) {
    const int inner = config.cfg_degree * config.ring_degree() * config.ulysses_degree();
    if (world.size() % inner == 0) config.stage_degree = world.size() / inner;
  }
  // The config is validated (inside the mesh) before the folder is even opened.
  mesh_ = std::make_shared<parallel::DeviceMesh>(world, config);
  pipeline::PipelineRuntime runtime{options.compute, mesh_, options.cache_policy};
  runtime.variant = options.variant;
  if (model_map || pipeline_map) {
    dist::Communicator& stages = mesh_->comm(parallel::MeshDim::Stage);
    // Collective: the stage ranks' hosts (bytes per host) and the ranks on rank 0's host (the
    // default budget shares that host's memory among them).
    const std::vector<std::string> stage_hosts = dist::gather_host_names(stages);
    const int local_ranks = dist::ranks_on_host_of(dist::gather_host_names(world), 0);
    // Rank 0 plans (the default budget reads this host's memory), every rank gets the maps.
    std::string maps_json;
    if (world.rank() == 0) {
      PlacementOptions po;
      po.model = options.model;
      po.variant = options.variant;
      po.device_map = options.device_map;
      po.transformer_device_map = options.transformer_device_map;
      po.vae_device_map = options.vae_device_map;
      po.text_encoder_2_device_map = options.text_encoder_2_device_map;
      po.text_encoder_device_map = options.text_encoder_device_map;
      po.max_memory = options.max_memory;
      po.world_size = stages.size();
      po.local_ranks = local_ranks;
      po.hosts = stage_hosts;
      po.dtype = options.compute;
      const PlacementPlan plan = plan_placement(po);
      nlohmann::ordered_json maps;
      if (plan.transformer) {
        maps["transformer"] = parallel::device_map_to_json(plan.transformer->device_map);
      }
      if (plan.vae) maps["vae"] = parallel::device_map_to_json(plan.vae->device_map);
      if (plan.pipeline) {
        maps["pipeline"] = parallel::pipeline_map_to_json(*plan.pipeline);
        // The whole transformer on its owner: the model-level map {"": rank}.
        if (!plan.transformer) maps["transformer"] = {{"", maps["pipeline"].at("transformer")}};
      }
      if (plan.text_encoder_2)
        maps["text_encoder_2"] = parallel::device_map_to_json(plan.text_encoder_2->device_map);
      if (plan.text_encoder)
        maps["text_encoder"] = parallel::device_map_to_json(plan.text_encoder->device_map);
      maps_json = maps.dump();
      placement_report_ = placement_plan_to_json(plan).dump();
    }
    dist::broadcast_string(world, maps_json, 0);
    dist::broadcast_string(world, placement_report_, 0);
    const auto maps = nlohmann::ordered_json::parse(maps_json);
    if (maps.contains("transformer")) {
      runtime.transformer_device_map = parallel::device_map_from_json(maps["transformer"]);
      runtime.placement_group = &stages;
    }
    if (maps.contains("text_encoder_2")) {
      runtime.text_encoder_2_device_map = parallel::device_map_from_json(maps["text_encoder_2"]);
      runtime.placement_group = &stages;
      encoders_placed_ = true;
    }
    if (maps.contains("text_encoder")) {
      runtime.text_encoder_device_map = parallel::device_map_from_json(maps["text_encoder"]);
      runtime.placement_group = &stages;
      encoders_placed_ = true;
    }
    if (maps.contains("vae")) {
      PARADIFF_CHECK(mesh_->replica().size() == stages.size(),
                     "--vae-device-map with cfg or context parallelism is not implemented yet");
      runtime.vae_device_map = parallel::device_map_from_json(maps["vae"]);
      runtime.placement_group = &stages;
    }
    // hf_device_map names stages. A text encoder or the VAE runs on its stage's first rank
    // (cfg, ring and ulysses index 0: replica rank stage x inner); the transformer on every rank
    // of its stage (a cfg or context-parallel group), through the model-level map {"": stage}.
    const int inner = mesh_->replica().size() / stages.size();
    if (maps.contains("pipeline"))
      for (const auto& [component, stage] : maps["pipeline"].items())
        runtime.component_ranks[component] = stage.get<int>() * inner;
  } else {
    PARADIFF_CHECK(options.max_memory.empty(),
                   "--max-memory is a budget for --device-map or --transformer-device-map, "
                   "neither of which is given");
  }
  component_ranks_ = runtime.component_ranks;
  {
    LoadingMemoryScope loading;
    pipeline_ = pipeline::load_pipeline(options.model, runtime);
  }
  PARADIFF_CHECK(component_ranks_.empty() || pipeline_->class_name() == "FluxPipeline" ||
                     pipeline_->class_name() == "QwenImagePipeline",
                 "--device-map balanced is executed for FluxPipeline and QwenImagePipeline; ",
                 options.model, " is a ", pipeline_->class_name());
  // The ranks of one replica on one host load the transformer together (every rank of a replica
  // denoises), so they can share its weights; a replica that runs no prompt loads nothing, so
  // replicas do not wait on each other. Under a placement map each rank holds other blocks: no
  // sharing then.
  host_ = dist::host_communicator(world);
  const int shard_degree = options.fully_shard_degree;
  PARADIFF_CHECK(shard_degree == 1 || !(model_map || pipeline_map),
                 "--fully-shard-degree cannot be combined with --device-map or "
                 "--transformer-device-map");
  const bool share = !(model_map || pipeline_map);
  if (share) host_replica_ = host_->split(mesh_->index(parallel::MeshDim::Data), host_->rank());
  dist::WeightSharing sharing = options_.share_weights;
  bool share_slices = false;
  if (share && shard_degree != 1) {
    // As in TransformerRunner: a host's ranks share their slices only when every shard group
    // has one rank per host.
    const bool across_hosts = dist::shard_groups_span_hosts(
        *dist::fully_shard_group(mesh_->context_parallel(), shard_degree), world);
    PARADIFF_CHECK(sharing != dist::WeightSharing::On || host_replica_->size() == 1 || across_hosts,
                   "--fully-shard-degree ", shard_degree,
                   " with --share-weights on needs "
                   "shard groups of one rank per host (sharding across hosts), but some ranks of "
                   "one shard group are on one host (",
                   host_replica_->size(),
                   " ranks of a replica on this host): use --share-weights off");
    share_slices = sharing != dist::WeightSharing::Off && host_replica_->size() > 1 && across_hosts;
    if (!share_slices) sharing = dist::WeightSharing::Off;
  }
  pipeline_->components().set_load_hook(
      [this, share, sharing, shard_degree, share_slices](const std::string& name,
                                                         const std::function<void()>& load) {
        if (name != "transformer") return load();
        kernels::WeightStorageScope narrow(options_.transformer_storage);
        if (!share) return load();
        // The shard group is made before the host's ranks load one after another.
        std::unique_ptr<dist::Communicator> group;
        if (shard_degree != 1)
          group = dist::fully_shard_group(mesh_->context_parallel(), shard_degree);
        // The model holds its sharded store (through its layers); here only its sizes are kept.
        int64_t block_bytes = 0, in_arena = 0;
        transformer_weights_ = dist::load_with_host_weights(*host_replica_, sharing, [&] {
          if (!group) return load();
          const auto store = dist::load_fully_sharded(std::move(group), load, share_slices);
          block_bytes = store->block_bytes();
          in_arena = store->slices_outside() ? store->shard_bytes() : 0;
        });
        transformer_weights_.weight_bytes += block_bytes - in_arena;
      });
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
  ProcessMemory high;  // at the denoising step of largest PSS
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
    if (component_ranks_.empty() && !encoders_placed_) {
      if (group_root) conditioning = pipeline_->encode_prompt(prompts, negatives, options);
      dist::broadcast_tensors(group, conditioning, 0);
    } else {
      // Each text encoder's owner encodes and broadcasts its part, or the owners of a placed
      // encoder's layers run it together (collective over the replica).
      conditioning = pipeline_->encode_prompt(prompts, negatives, options);
    }
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
    // Where each image starts (GenerationRequest::latent_draw, seeds): by default every prompt
    // starts from the seed's latents, as one diffusers call per prompt would (image k from row k
    // of one draw of num_images_per_prompt rows); OneBatch takes item i from row i of one draw
    // for the whole request, as one diffusers call with every prompt; per-prompt seeds give each
    // prompt its own draw (once, however many of its images run here).
    std::vector<Tensor> starts;
    if (!request.seeds.empty()) {
      Tensor start;
      int64_t drawn_for = -1;
      for (int64_t item : mine) {
        const int64_t index = item / per_prompt;
        if (index != drawn_for) {
          pipeline::GenerationOptions own = options;
          own.seed = request.seeds[static_cast<size_t>(index)];
          start = pipeline_->prepare_latents(own, per_prompt);
          drawn_for = index;
        }
        starts.push_back(start.slice(item % per_prompt, 1));
      }
    } else {
      const bool one_batch = request.latent_draw == LatentDraw::OneBatch;
      const Tensor start = pipeline_->prepare_latents(options, one_batch ? count : per_prompt);
      for (int64_t item : mine)
        starts.push_back(start.slice(one_batch ? item : item % per_prompt, 1));
    }
    latents = pipeline_->denoise(conditioning, concat(starts, 0), options,
                                 step_callback(on_step, item_prompts, &high));
    result.stats.denoise_seconds = stage.seconds();
    result.stats.steps = options.num_inference_steps;

    stage.restart();
    if (real > 0 && request.output_type != OutputType::Latent) {
      // The VAE's owner decodes (the group's first rank without a pipeline map) and hands the
      // images to the group's first rank.
      const auto vae = component_ranks_.find("vae");
      const int decoder = vae == component_ranks_.end() ? 0 : vae->second;
      // Under a VAE map every rank of the group decodes its units (the images on every rank).
      const bool placed_vae = !options_.vae_device_map.empty();
      if (placed_vae || group.rank() == decoder)
        images = pipeline_->decode(latents.slice(0, real), options);
      if (!placed_vae && decoder != 0) {
        if (group.rank() == decoder) dist::send_tensor(group, images, 0, kImagesTag);
        if (group_root) images = dist::receive_tensor(group, decoder, kImagesTag);
      }
    }
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
  ProcessMemory memory = high;
  memory.peak_rss_bytes = process_memory().peak_rss_bytes;
  int64_t host_sums[2] = {memory.pss_bytes, memory.weights_pss_bytes};
  host_->allreduce(host_sums, 2, dist::ReduceType::I64, dist::ReduceOp::Sum);
  int64_t figures[7] = {memory.pss_bytes,
                        memory.weights_pss_bytes,
                        memory.peak_rss_bytes,
                        host_sums[0],
                        host_sums[1],
                        transformer_weights_.weight_bytes,
                        transformer_weights_.shared ? 1 : 0};
  world_.allreduce(figures, 7, dist::ReduceType::I64, dist::ReduceOp::Max);
  result.stats.rank_pss_bytes = figures[0];
  result.stats.rank_weights_pss_bytes = figures[1];
  result.stats.peak_rss_bytes = figures[2];
  result.stats.host_pss_bytes = figures[3];
  result.stats.host_weights_pss_bytes = figures[4];
  result.stats.weight_bytes = figures[5];
  result.stats.shared_weights = figures[6] == 1;
  world_.barrier();
  result.stats.peak_bytes = peak;
  result.stats.encode_seconds = stage_s[0];
  result.stats.denoise_seconds = stage_s[1];
  result.stats.decode_seconds = stage_s[2];
  result.stats.steps = steps;
  result.stats.total_seconds = total.seconds();
  return result;
}

void Engine::share_from_root(parallel::NamedTensors& tensors) {
  dist::broadcast_tensors(world_, tensors, 0);
}

void Engine::share_results(GenerationResult& result) {
  // The images travel as named tensors: per image its (prompt, image) index pair, its latents
  // and, when decoded, its pixels; names sort in image order ("000012...") so the order holds.
  parallel::NamedTensors all;
  for (size_t k = 0; k < result.images.size(); ++k) {
    const auto& image = result.images[k];
    char key[32];
    std::snprintf(key, sizeof(key), "%08zu", k);
    Tensor index = Tensor::empty({2}, DType::I64);
    index.data<int64_t>()[0] = image.index;
    index.data<int64_t>()[1] = image.image_index;
    all[str_cat(key, ".index")] = index;
    all[str_cat(key, ".latents")] = image.latents;
    if (image.image.defined()) all[str_cat(key, ".image")] = image.image;
  }
  share_from_root(all);
  if (world_.rank() == 0) return;
  result.images.clear();
  for (const auto& [name, tensor] : all) {
    if (!name.ends_with(".index")) continue;
    const std::string key = name.substr(0, name.size() - 6);
    GeneratedImage image;
    image.index = tensor.data<int64_t>()[0];
    image.image_index = tensor.data<int64_t>()[1];
    image.latents = all.at(key + ".latents");
    const auto pixels = all.find(key + ".image");
    if (pixels != all.end()) image.image = pixels->second;
    result.images.push_back(std::move(image));
  }
}

uint64_t Engine::shared_random_seed() {
  uint64_t seed = 0;
  if (world_.rank() == 0) {
    std::random_device device;
    seed = (static_cast<uint64_t>(device()) << 32) ^ device();
  }
  world_.broadcast(&seed, sizeof(seed), 0);
  return seed;
}

void Engine::require_one_replica(const char* stage) const {
  PARADIFF_CHECK(replicas() == 1, stage, " makes one image: cfg_degree x ring_degree x ",
                 "ulysses_degree (", options_.parallel.replica_degree(),
                 ") must equal the number of processes (", world_.size(), ")");
}

pipeline::Conditioning Engine::encode_prompt(const GenerationRequest& request) {
  const pipeline::GenerationOptions options = resolve(request);
  // Under a pipeline-level map every rank takes part: each encoder's owner encodes and sends.
  if (!component_ranks_.empty()) require_one_replica("encode_prompt with a device map");
  if (component_ranks_.empty() && world_.rank() != 0) return {};
  std::vector<std::string> negatives;
  if (pipeline_->uses_true_cfg(options, !request.negative_prompt.empty()))
    for (size_t i = 0; i < request.prompt.size(); ++i)
      negatives.push_back(request.negative_prompt_for(i));
  pipeline::Conditioning out = pipeline_->encode_prompt(request.prompt, negatives, options);
  return world_.rank() == 0 ? out : pipeline::Conditioning{};
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
    // One row per conditioning row (all of a pipeline's conditioning tensors share the batch),
    // drawn at once from the seed as diffusers' prepare_latents does for a batch.
    const int64_t rows = conditioning.empty() ? 1 : conditioning.begin()->second.dim(0);
    latents = pipeline_->prepare_latents(options, rows);
  }
  Tensor out = pipeline_->denoise(conditioning, latents, options, step_callback(on_step, {0}));
  return world_.rank() == 0 ? out : Tensor();
}

Tensor Engine::decode(const Tensor& latents, const GenerationRequest& request) {
  const pipeline::GenerationOptions options = resolve(request);
  const auto vae = component_ranks_.find("vae");
  const int decoder = vae == component_ranks_.end() ? 0 : vae->second;
  if (decoder == 0) return world_.rank() == 0 ? pipeline_->decode(latents, options) : Tensor();
  // Under a pipeline-level map the VAE's owner decodes rank 0's latents and sends the images.
  require_one_replica("decode with a device map");
  Tensor images;
  if (world_.rank() == 0) {
    dist::send_tensor(world_, latents, decoder, kLatentsTag);
    images = dist::receive_tensor(world_, decoder, kImagesTag);
  } else if (world_.rank() == decoder) {
    images = pipeline_->decode(dist::receive_tensor(world_, 0, kLatentsTag), options);
    dist::send_tensor(world_, images, 0, kImagesTag);
    images = Tensor();
  }
  return images;
}

}  // namespace paradiff::engine
