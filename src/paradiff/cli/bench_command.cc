// paradiff bench: transformer forwards timed under every context-parallel backend the world size
// allows, in the columns of diffusers' documented benchmark (CP Backend | Time / Iter (ms) |
// Steps / Sec | Peak Memory (GB)) plus the bytes each rank sends per step and the share of the
// step spent waiting on communication, for FLUX or Qwen-Image transformers. One "iter" here is one
// transformer forward (one denoising step). Run it as a world of one for the single-process row,
// and under mpirun for the rest (scripts/paradiff-bench-cp runs both). With
// --transformer-device-map the transformer is instead split over the ranks by accelerate's map
// (a model-level placement), one row per rank with that rank's own figures.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "paradiff/cli/commands.h"
#include "paradiff/core/cpu_isa.h"
#include "paradiff/core/logging.h"
#include "paradiff/core/memory.h"
#include "paradiff/core/threads.h"
#include "paradiff/core/timer.h"
#include "paradiff/dist/tensor_broadcast.h"
#include "paradiff/engine/placed_transformer.h"
#include "paradiff/engine/transformer_runner.h"
#include "paradiff/kernels/weight_storage.h"

namespace paradiff::cli {

namespace {

using models::flux::FluxTransformer2DModel;
using models::flux::FluxTransformerConfig;
using models::flux::FluxTransformerInputs;
using models::qwen_image::QwenImageShape;
using models::qwen_image::QwenImageTransformer2DModel;
using models::qwen_image::QwenImageTransformerConfig;
using models::qwen_image::QwenImageTransformerInputs;

struct Options {
  std::string model, model_type, dtype = "bf16", modes;
  int64_t image_tokens = 4096, text_tokens = 256;
  int64_t heads = 8, head_dim = 128, double_layers = 4, single_layers = 8, joint_dim = 4096;
  int64_t layers = 12;  // Qwen-Image: as many blocks as FLUX's default 4 + 8, of the same FLOPs
  int threads = 0, steps = 3;
  std::string ring_progress = "thread";
  WeightOptions weights;
  std::string transformer_device_map, max_memory;  // a placed run instead of the CP backends
  bool header = true;
};

// Deterministic values in [-0.5, 0.5).
Tensor fill(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::empty(shape, DType::F32);
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    t.data<float>()[i] = static_cast<float>(x >> 40) / (1 << 24) - 0.5f;
  }
  return t;
}

// The side of the most nearly square grid of `image` tokens (rows of `side`, the last partial).
int64_t grid_side(int64_t image) {
  int64_t side = 1;
  while ((side + 1) * (side + 1) <= image) ++side;
  return side;
}

// Deterministic inputs shaped as FluxPipeline makes them.
FluxTransformerInputs make_inputs(const FluxTransformerConfig& c, int64_t image, int64_t text) {
  FluxTransformerInputs in;
  in.hidden_states = fill({1, image, c.in_channels}, 1);
  in.encoder_hidden_states = fill({1, text, c.joint_attention_dim}, 2);
  in.pooled_projections = fill({1, c.pooled_projection_dim}, 3);
  in.timestep = Tensor::empty({1}, DType::F32);
  in.timestep.data<float>()[0] = 0.5f;
  in.txt_ids = Tensor::zeros({text, 3}, DType::F32);
  in.img_ids = Tensor::zeros({image, 3}, DType::F32);
  const int64_t side = grid_side(image);
  for (int64_t i = 0; i < image; ++i) {
    in.img_ids.data<float>()[i * 3 + 1] = static_cast<float>(i / side);
    in.img_ids.data<float>()[i * 3 + 2] = static_cast<float>(i % side);
  }
  if (c.guidance_embeds) {
    in.guidance = Tensor::empty({1}, DType::F32);
    in.guidance.data<float>()[0] = 3.5f;
  }
  return in;
}

// Deterministic inputs shaped as QwenImagePipeline makes them, every text token valid. img_shapes
// needs a whole grid, so `image` must be a product of two sides (as (H/16)·(W/16) always is).
QwenImageTransformerInputs make_qwen_inputs(const QwenImageTransformerConfig& c, int64_t image,
                                            int64_t text) {
  int64_t height = grid_side(image);
  while (image % height) --height;
  QwenImageTransformerInputs in;
  in.hidden_states = fill({1, image, c.in_channels}, 1);
  in.encoder_hidden_states = fill({1, text, c.joint_attention_dim}, 2);
  in.timestep = Tensor::empty({1}, DType::F32);
  in.timestep.data<float>()[0] = 0.5f;
  in.img_shapes = {{QwenImageShape{1, height, image / height}}};
  return in;
}

// The backends this world size can run: every Ulysses x ring factorisation, each rotate method.
std::vector<parallel::ContextParallelConfig> backends(int world) {
  std::vector<parallel::ContextParallelConfig> out;
  if (world == 1) return {parallel::ContextParallelConfig{}};
  for (int u = world; u >= 1; --u) {
    if (world % u) continue;
    const int r = world / u;
    if (r == 1) {
      out.push_back({1, u, true, "p2p"});
      continue;
    }
    for (const char* rotate : {"p2p", "alltoall", "allgather"}) out.push_back({r, u, true, rotate});
  }
  return out;
}

std::string row_name(const parallel::ContextParallelConfig& c, int world) {
  return world == 1 ? "single process" : c.describe();
}

// What the header line and the runner need of either model.
struct BenchModel {
  std::string description;  // names the model: class, weights, size
  double flops = 0;         // one forward
  engine::TransformerInputs inputs;
  engine::TransformerRunner::Loader load;
  // A random model written out as a diffusers folder (a placed run reads it as a checkpoint).
  std::function<void(const std::string& folder)> write_random;
};

BenchModel flux_model(const Options& o, DType compute) {
  FluxTransformerConfig config;
  if (!o.model.empty()) {
    config = FluxTransformerConfig::load(o.model + "/config.json");
  } else {
    config.num_attention_heads = o.heads;
    config.attention_head_dim = o.head_dim;
    config.num_layers = o.double_layers;
    config.num_single_layers = o.single_layers;
    config.joint_attention_dim = o.joint_dim;
    config.axes_dims_rope = {o.head_dim / 8, o.head_dim * 7 / 16, o.head_dim * 7 / 16};
    config.validate("bench config");
  }
  // The FLUX header is kept as it was (the model's path, or "random weights").
  BenchModel m{str_cat(o.model.empty() ? std::string("random weights") : o.model, ", inner ",
                       config.inner_dim(), ", ", config.num_layers, " double + ",
                       config.num_single_layers, " single blocks"),
               config.forward_flops(1, o.image_tokens, o.text_tokens),
               make_inputs(config, o.image_tokens, o.text_tokens),
               {},
               {}};
  m.load = [config, compute, folder = o.model]() -> engine::TransformerModel {
    return folder.empty() ? FluxTransformer2DModel::with_random_weights(config, compute, 7)
                          : FluxTransformer2DModel::from_pretrained(folder, compute);
  };
  m.write_random = [config, compute](const std::string& folder) {
    engine::write_random_transformer(config, compute, 7, folder);
  };
  return m;
}

BenchModel qwen_image_model(const Options& o, DType compute) {
  QwenImageTransformerConfig config;
  if (!o.model.empty()) {
    config = QwenImageTransformerConfig::load(o.model + "/config.json");
  } else {
    config.num_attention_heads = o.heads;
    config.attention_head_dim = o.head_dim;
    config.num_layers = o.layers;
    config.joint_attention_dim = o.joint_dim;
    // Qwen-Image's own split of 128 (16, 56, 56), scaled to the head dim; each part even, as
    // rotary pairs need (16 -> (4, 6, 6)).
    const int64_t spatial = o.head_dim * 7 / 16 / 2 * 2;
    config.axes_dims_rope = {o.head_dim - 2 * spatial, spatial, spatial};
    config.validate("bench config");
  }
  BenchModel m{str_cat("QwenImageTransformer2DModel ",
                       o.model.empty() ? std::string("random weights") : o.model, ", inner ",
                       config.inner_dim(), ", ", config.num_layers, " dual-stream blocks"),
               config.forward_flops(1, o.image_tokens, o.text_tokens),
               make_qwen_inputs(config, o.image_tokens, o.text_tokens),
               {},
               {}};
  m.load = [config, compute, folder = o.model]() -> engine::TransformerModel {
    return folder.empty() ? QwenImageTransformer2DModel::with_random_weights(config, compute, 7)
                          : QwenImageTransformer2DModel::from_pretrained(folder, compute);
  };
  m.write_random = [config, compute](const std::string& folder) {
    engine::write_random_transformer(config, compute, 7, folder);
  };
  return m;
}

void print_table_header() {
  std::printf(
      "| CP Backend | Time / Iter (ms) | Steps / Sec | Peak Memory (GB) | Sent / Rank / "
      "Step (MB) | Comm Wait | Weights | PSS / Rank (GB): weights + rest | PSS / Host "
      "(GB): weights + rest | Peak RSS / Rank (GB) | Weights Gathered / Rank / Step (MB), Wait "
      "|\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
}

// The transformer split by a model-level map over every rank of the world (one stage each at
// most): the map is planned on rank 0 (its budget, its host's memory) and broadcast; one row per
// rank, each with that rank's own peak memory, bytes sent per step, communication wait and
// memory (its host's PSS summed over the host's ranks).
int run_placed(const Options& o, const BenchModel& bench, DType compute,
               kernels::WeightStorage storage, dist::Communicator& world) {
  const bool root = world.rank() == 0;
  std::string folder = o.model;
  if (folder.empty()) {
    // A random model is written once, by rank 0, where every rank of this host can read it.
    if (root) {
      folder = (std::filesystem::temp_directory_path() /
                str_cat("paradiff-bench-", static_cast<long long>(::getpid())))
                   .string();
      bench.write_random(folder);
      // The model and the file image were freed; hand the heap back, so that rank 0's memory
      // columns show the timed run, not the writing.
      release_freed_memory();
    }
    dist::broadcast_string(world, folder, 0);
  }
  struct RemoveRandom {
    std::string folder;
    bool root;
    ~RemoveRandom() {
      std::error_code ec;
      if (root && !folder.empty()) std::filesystem::remove_all(folder, ec);
    }
  } remove_random{o.model.empty() ? folder : std::string(), root};
  world.barrier();

  const engine::AgreedPlacement placement = engine::agree_transformer_placement(
      world, folder, o.transformer_device_map, o.max_memory, world.size(), compute);
  if (root && o.header) {
    std::printf("placement (--transformer-device-map %s%s%s): %s\n",
                o.transformer_device_map.c_str(), o.max_memory.empty() ? "" : " --max-memory ",
                o.max_memory.c_str(), placement.summary.c_str());
    print_table_header();
  }
  const parallel::DeviceMap& map = placement.map;

  parallel::ParallelConfig parallel;
  parallel.stage_degree = world.size();
  // Each rank holds different weights: nothing for the host's ranks to share.
  engine::TransformerRunner runner(
      world, parallel, engine::TransformerRunner::MeshLoader([&](parallel::DeviceMesh& mesh) {
        kernels::WeightStorageScope narrow(storage);
        return engine::load_placed_transformer(folder, compute, map,
                                               mesh.comm(parallel::MeshDim::Stage));
      }),
      dist::WeightSharing::Off);
  const auto t = runner.time_forwards(bench.inputs, o.steps, /*warm_up=*/true);
  if (root) {
    for (size_t r = 0; r < t.ranks.size(); ++r) {
      const auto& k = t.ranks[r];
      std::printf(
          "| placed %s, rank %zu (%s) | %.1f | %.3f | %.3f | %.3f | %.0f%% | %.3f GB on this rank "
          "| %.3f + %.3f | %.3f + %.3f | %.3f | - |\n",
          std::filesystem::path(o.transformer_device_map).filename().c_str(), r,
          placement.hosts[r].c_str(), t.median_ms, 1000.0 / t.median_ms, k.peak_bytes / 1e9,
          k.sent_bytes / 1e6, 100.0 * (k.wait_us / 1e3) / t.median_ms, k.weight_bytes / 1e9,
          k.weights_pss_bytes / 1e9, (k.pss_bytes - k.weights_pss_bytes) / 1e9,
          k.host_weights_pss_bytes / 1e9, (k.host_pss_bytes - k.host_weights_pss_bytes) / 1e9,
          k.peak_rss_bytes / 1e9);
    }
    std::fflush(stdout);
  }
  return 0;
}

int run(const Options& o, dist::Communicator& world) {
  const DType compute = compute_dtype(o.dtype);
  const kernels::WeightStorage storage = kernels::parse_weight_storage(o.weights.storage_dtype);
  kernels::check_weight_storage(storage, compute);
  if (o.threads > 0) set_num_threads(o.threads);
  // A folder says what it is; --model-type, when also given, must agree with it.
  std::string type = o.model_type.empty() ? "flux" : o.model_type;
  if (!o.model.empty()) {
    const std::string folder_type =
        engine::transformer_class_name(o.model) == "QwenImageTransformer2DModel" ? "qwen-image"
                                                                                 : "flux";
    PARADIFF_CHECK(o.model_type.empty() || o.model_type == folder_type, "--model-type ",
                   o.model_type, " disagrees with --model '", o.model, "', which holds a ",
                   folder_type, " transformer");
    type = folder_type;
  }
  const BenchModel bench =
      type == "qwen-image" ? qwen_image_model(o, compute) : flux_model(o, compute);
  const bool root = world.rank() == 0;
  if (root && o.header) {
    std::printf(
        "model: %s, %lld image + %lld text tokens, %s compute%s, %d thread(s) per rank, %d "
        "rank(s); %.1f GFLOP per step; %s\n",
        bench.description.c_str(), (long long)o.image_tokens, (long long)o.text_tokens,
        std::string(dtype_name(compute)).c_str(),
        kernels::storage_narrows(storage, compute)
            ? str_cat(" (", kernels::weight_storage_name(storage), " weight storage)").c_str()
            : "",
        num_threads(), world.size(), bench.flops / 1e9, cpu_isa_summary().c_str());
    if (o.transformer_device_map.empty()) print_table_header();
  }
  if (!o.transformer_device_map.empty()) return run_placed(o, bench, compute, storage, world);
  PARADIFF_CHECK(o.max_memory.empty(), "--max-memory needs --transformer-device-map");
  const auto filter = o.modes;
  for (const auto& cp : backends(world.size())) {
    if (!filter.empty() &&
        filter.find(cp.describe().substr(0, cp.describe().find(' '))) == std::string::npos)
      continue;
    parallel::ParallelConfig parallel;
    if (world.size() > 1) parallel.context_parallel_config = cp;
    parallel.ring_progress = parallel::parse_ring_progress(o.ring_progress);
    engine::TransformerRunner runner(
        world, parallel,
        [&] {
          kernels::WeightStorageScope narrow(storage);
          return bench.load();
        },
        dist::parse_weight_sharing(o.weights.share_weights), o.weights.fully_shard_degree);
    const auto t = runner.time_forwards(bench.inputs, o.steps, /*warm_up=*/true);
    if (root) {
      std::printf(
          "| %s | %.1f | %.3f | %.3f | %.1f | %.0f%% | %s | %.3f + %.3f | %.3f + %.3f | %.3f | "
          "%.1f, %.0f%% |\n",
          row_name(cp, world.size()).c_str(), t.median_ms, 1000.0 / t.median_ms, t.peak_bytes / 1e9,
          t.sent_bytes_per_rank / 1e6, 100.0 * t.wait_ms / t.median_ms,
          t.fully_shard_degree > 1
              ? str_cat("sharded by ", t.fully_shard_degree,
                        t.shared_weights ? str_cat(", shared by ", t.host_ranks) : "")
                    .c_str()
          : t.shared_weights ? str_cat("shared by ", t.host_ranks).c_str()
                             : "per rank",
          t.rank_weights_pss_bytes / 1e9, (t.rank_pss_bytes - t.rank_weights_pss_bytes) / 1e9,
          t.host_weights_pss_bytes / 1e9, (t.host_pss_bytes - t.host_weights_pss_bytes) / 1e9,
          t.rank_peak_rss_bytes / 1e9, t.gathered_bytes_per_rank / 1e6,
          100.0 * t.gather_wait_ms / t.median_ms);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Time transformer forwards under every context-parallel backend of this world");
  cmd->add_option("--model", o->model,
                  "diffusers transformer folder, FLUX or Qwen-Image (default: random weights)");
  cmd->add_option("--model-type", o->model_type,
                  "random model: flux (default) or qwen-image; with --model, must match it")
      ->check(CLI::IsMember({"flux", "qwen-image"}));
  cmd->add_option("--image-tokens", o->image_tokens, "image tokens ((H/16)·(W/16))")
      ->capture_default_str();
  cmd->add_option("--text-tokens", o->text_tokens, "text tokens")->capture_default_str();
  cmd->add_option("--heads", o->heads, "random model: attention heads")->capture_default_str();
  cmd->add_option("--head-dim", o->head_dim, "random model: head dim")->capture_default_str();
  cmd->add_option("--double-layers", o->double_layers, "random model: double blocks")
      ->capture_default_str();
  cmd->add_option("--single-layers", o->single_layers, "random model: single blocks")
      ->capture_default_str();
  cmd->add_option("--layers", o->layers, "random Qwen-Image model: dual-stream blocks")
      ->capture_default_str();
  cmd->add_option("--joint-dim", o->joint_dim, "random model: joint_attention_dim")
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "compute precision: fp32 or bf16")->capture_default_str();
  cmd->add_option("--threads", o->threads, "kernel threads per rank");
  cmd->add_option("--steps", o->steps, "timed forwards per backend (median)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--modes", o->modes, "only these backends, e.g. \"ulysses,ring\"");
  add_weight_options(*cmd, o->weights);
  cmd->add_option("--ring-progress", o->ring_progress,
                  "p2p ring: drive transfers from a helper thread, or by tests between chunks")
      ->envname("PARADIFF_RING_PROGRESS")
      ->check(CLI::IsMember({"thread", "test"}))
      ->capture_default_str();
  cmd->add_option("--transformer-device-map", o->transformer_device_map,
                  "time the transformer split over the ranks by accelerate's map instead: auto, "
                  "balanced, balanced_low_0, sequential or a .json map file (one row per rank)");
  cmd->add_option("--max-memory", o->max_memory,
                  "with --transformer-device-map: budget per rank, e.g. 0=16GB,1=16GB (default: "
                  "the host's available memory shared by its ranks)");
  cmd->add_flag("--no-header{false}", o->header, "print only the table rows");
  cmd->callback(
      [o, &action] { action = [o](dist::Communicator& world) { return run(*o, world); }; });
}

}  // namespace paradiff::cli
