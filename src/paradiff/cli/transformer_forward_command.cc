// paradiff transformer-forward: one transformer forward (FluxTransformer2DModel or
// QwenImageTransformer2DModel, as the folder's config.json names it) on inputs stored in a
// safetensors file, written to another: the debugging window onto the model, and how anyone
// checks paradiff against another implementation (tools/compare_diffusers uses it). Under mpirun
// with context-parallel flags the forward really runs split across the ranks; it prints the
// bytes each rank sent beside the algorithms' theoretical volume. With --transformer-device-map
// the model is placed by accelerate's map instead: its units spread over stages of ranks (each
// stage a context-parallel group when the flags ask for one), "disk" units streamed from the
// model's safetensors at every forward, which is how a model larger than the host runs.
#include <filesystem>

#include "paradiff/cli/commands.h"
#include "paradiff/core/logging.h"
#include "paradiff/core/threads.h"
#include "paradiff/core/timer.h"
#include "paradiff/engine/placed_transformer.h"
#include "paradiff/engine/transformer_runner.h"
#include "paradiff/io/safetensors_writer.h"
#include "paradiff/kernels/weight_storage.h"

namespace paradiff::cli {

namespace {

struct Options {
  std::string model, config, inputs, output, dtype = "fp32";
  std::string transformer_device_map, max_memory;
  WeightOptions weights;
  int threads = 0;
  int repeat = 0;
  ParallelOptions parallel;
};

// A folder loads as the class its config.json names; a single file is a Black Forest Labs FLUX
// checkpoint (the only single-file format paradiff reads).
engine::TransformerModel load_model(const Options& o, DType compute) {
  namespace fs = std::filesystem;
  using models::flux::FluxTransformer2DModel;
  if (fs::is_directory(o.model)) return engine::load_transformer(o.model, compute);
  return FluxTransformer2DModel::from_single_file(
      o.model, models::flux::FluxTransformerConfig::load(o.config), compute);
}

// The model's class, from the folder's config.json (checked) or, for a single file, FLUX; the
// flag combinations that cannot work are refused here, before anything heavy is read.
std::string model_class(const Options& o) {
  namespace fs = std::filesystem;
  PARADIFF_CHECK(fs::exists(o.model), "--model '", o.model, "' does not exist");
  if (fs::is_directory(o.model)) {
    PARADIFF_CHECK(o.config.empty(), "--config is only for single-file checkpoints; the folder '",
                   o.model, "' has its own config.json");
    return engine::transformer_class_name(o.model);
  }
  PARADIFF_CHECK(!o.config.empty(), "--model '", o.model,
                 "' is a single file: pass the diffusers config.json of the model with --config");
  return "FluxTransformer2DModel";
}

int run(const Options& o, dist::Communicator& world) {
  const DType compute = compute_dtype(o.dtype);
  const kernels::WeightStorage storage = kernels::parse_weight_storage(o.weights.storage_dtype);
  kernels::check_weight_storage(storage, compute);
  if (o.threads > 0) set_num_threads(o.threads);
  parallel::ParallelConfig parallel = o.parallel.config();
  const bool placed = !o.transformer_device_map.empty();
  PARADIFF_CHECK(placed || o.max_memory.empty(), "--max-memory needs --transformer-device-map");
  if (placed) {
    // Every rank is in some stage; a stage is one context-parallel group (or one rank).
    const int group = parallel.ring_degree() * parallel.ulysses_degree();
    PARADIFF_CHECK(world.size() % group == 0, "--transformer-device-map: ", world.size(),
                   " processes do not split into stages of ring_degree x ulysses_degree = ", group,
                   " ranks");
    parallel.stage_degree = world.size() / group;
    PARADIFF_CHECK(std::filesystem::is_directory(o.model),
                   "--transformer-device-map places a diffusers folder's transformer; '", o.model,
                   "' is a single file");
    PARADIFF_CHECK(o.weights.fully_shard_degree == 1,
                   "--transformer-device-map with --fully-shard-degree is not implemented: "
                   "placement already gives each stage only its own blocks");
    // Ranks of different stages hold different units: there is one copy to share only when
    // every rank is in the one stage.
    PARADIFF_CHECK(
        parallel.stage_degree == 1 ||
            dist::parse_weight_sharing(o.weights.share_weights) != dist::WeightSharing::On,
        "--share-weights on with --transformer-device-map over ", parallel.stage_degree,
        " stages: the stages hold different weights; use --share-weights auto or off");
  }
  parallel.validate(world.size());
  // Open the inputs before the (slow) model load so that a bad file fails fast.
  const std::string cls = model_class(o);
  const auto in = engine::load_transformer_inputs(cls, o.inputs);
  check_output_folder(o.output);

  Stopwatch load;
  engine::TransformerRunner::MeshLoader loader = [&](parallel::DeviceMesh&) {
    kernels::WeightStorageScope narrow(storage);
    return load_model(o, compute);
  };
  dist::WeightSharing sharing = dist::parse_weight_sharing(o.weights.share_weights);
  parallel::DeviceMap map;
  if (placed) {
    const auto placement = engine::agree_transformer_placement(
        world, o.model, o.transformer_device_map, o.max_memory, parallel.stage_degree, compute);
    if (world.rank() == 0)
      log_info("placement (--transformer-device-map ", o.transformer_device_map,
               o.max_memory.empty() ? "" : " --max-memory ", o.max_memory,
               "): ", placement.summary);
    map = placement.map;
    loader = [&](parallel::DeviceMesh& mesh) {
      kernels::WeightStorageScope narrow(storage);
      return engine::load_placed_transformer(o.model, compute, map,
                                             mesh.comm(parallel::MeshDim::Stage));
    };
    if (parallel.stage_degree > 1) sharing = dist::WeightSharing::Off;
  }
  engine::TransformerRunner runner(world, parallel, loader, sharing, o.weights.fully_shard_degree);
  runner.validate_inputs(in);
  log_info("loaded ", o.model, " in ", load.seconds(), " s (", dtype_name(compute), " compute, ",
           kernels::storage_narrows(storage, compute)
               ? str_cat(kernels::weight_storage_name(storage), " weight storage, ")
               : std::string(),
           num_threads(), " threads)");

  const auto timing = runner.time_forwards(in, o.repeat, /*warm_up=*/o.repeat > 0);
  // Every rank holds the gathered output; rank 0 writes it and reports.
  if (world.rank() == 0) {
    write_safetensors(o.output, {{"sample", timing.sample}});
    std::printf("forward_ms: %.3f\n", timing.median_ms);
    std::printf("peak_memory_bytes: %lld (largest rank)\n",
                static_cast<long long>(timing.peak_bytes));
    if (runner.mesh().context_parallel_enabled()) {
      const auto& cp = runner.mesh().context_parallel_config();
      std::printf("context_parallel: ulysses=%d ring=%d rotate=%s\n", cp.ulysses_degree,
                  cp.ring_degree, cp.rotate_method.c_str());
    }
    std::printf("weights: %lld bytes prepared, %s (%d rank(s) on the largest host)\n",
                static_cast<long long>(timing.weight_bytes),
                timing.fully_shard_degree > 1
                    ? (timing.shared_weights ? "blocks sharded across hosts, one copy per host"
                                             : "blocks sharded across ranks")
                : timing.shared_weights ? "one copy per host"
                                        : "one copy per rank",
                timing.host_ranks);
    if (timing.fully_shard_degree > 1)
      std::printf(
          "fully_shard: degree %d, block weights %lld bytes, shard %lld and block buffers %lld "
          "bytes per rank, gathered_bytes_per_rank %lld per forward (largest rank), gather wait "
          "%.1f ms per forward\n",
          timing.fully_shard_degree, static_cast<long long>(timing.block_weight_bytes),
          static_cast<long long>(timing.shard_bytes),
          static_cast<long long>(timing.block_buffer_bytes),
          static_cast<long long>(timing.gathered_bytes_per_rank), timing.gather_wait_ms);
    std::printf(
        "pss_bytes_per_rank: %lld (weights %lld, mapped checkpoint file pages %lld; largest rank, "
        "after the forwards)\n",
        static_cast<long long>(timing.rank_pss_bytes),
        static_cast<long long>(timing.rank_weights_pss_bytes),
        static_cast<long long>(timing.rank_file_pss_bytes));
    std::printf(
        "pss_bytes_per_host: %lld (weights %lld, mapped checkpoint file pages %lld; summed over "
        "the host's ranks)\n",
        static_cast<long long>(timing.host_pss_bytes),
        static_cast<long long>(timing.host_weights_pss_bytes),
        static_cast<long long>(timing.host_file_pss_bytes));
    std::printf("peak_rss_bytes_per_rank: %lld (largest rank)\n",
                static_cast<long long>(timing.rank_peak_rss_bytes));
    std::printf("sent_bytes_per_rank: %lld (largest rank, per forward)\n",
                static_cast<long long>(timing.sent_bytes_per_rank));
    if (parallel.stage_degree > 1) {
      // The stages hand hidden states on; the theory below is context parallelism's alone.
      std::printf("placement_stages: %d (each stage sends its hidden states to the next)\n",
                  parallel.stage_degree);
    } else {
      std::printf("expected_sent_bytes_per_rank: %lld (theoretical volume, largest rank)\n",
                  static_cast<long long>(timing.expected_sent_bytes_per_rank));
      std::printf("sent_bytes_match_theory: %s (every rank)\n",
                  timing.every_rank_sent_expected ? "yes" : "no");
    }
  }
  return 0;
}

}  // namespace

void add_transformer_forward_command(CLI::App& app, Action& action) {
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "transformer-forward",
      "Run one FluxTransformer2DModel or QwenImageTransformer2DModel forward on inputs from a "
      "safetensors file");
  cmd->add_option("--model", opts->model,
                  "diffusers transformer folder, or a Black Forest Labs single-file checkpoint")
      ->required()
      ->envname("PARADIFF_MODEL");
  cmd->add_option("--config", opts->config, "config.json for a single-file checkpoint");
  cmd->add_option("--inputs", opts->inputs,
                  "safetensors with FLUX's hidden_states, encoder_hidden_states, "
                  "pooled_projections, timestep, img_ids, txt_ids[, guidance], or Qwen-Image's "
                  "hidden_states, encoder_hidden_states[, encoder_hidden_states_mask], timestep, "
                  "img_shapes")
      ->required();
  cmd->add_option("--output", opts->output, "safetensors to write `sample` to")->required();
  cmd->add_option("--dtype", opts->dtype, "compute precision: fp32 or bf16")
      ->envname("PARADIFF_DTYPE")
      ->capture_default_str();
  cmd->add_option("--threads", opts->threads, "kernel threads (default: all cores)")
      ->envname("PARADIFF_THREADS")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--repeat", opts->repeat,
                  "timed forwards after one warm-up; prints the median as forward_ms")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--transformer-device-map", opts->transformer_device_map,
                  "place the transformer by accelerate's map: auto, balanced, balanced_low_0, "
                  "sequential or a .json map file; its devices are stages of ranks (each a "
                  "context-parallel group with --ulysses-degree/--ring-degree), \"disk\" units "
                  "streamed from the model's safetensors at every forward");
  cmd->add_option(
      "--max-memory", opts->max_memory,
      "with --transformer-device-map: budget per stage, e.g. 0=16GB; what does not fit is streamed "
      "from \"disk\" (default: "
      "the host's available memory shared by its ranks)");
  add_weight_options(*cmd, opts->weights);
  add_parallel_options(*cmd, opts->parallel, /*with_cfg=*/false);
  cmd->callback([opts, &action] {
    action = [opts](dist::Communicator& world) { return run(*opts, world); };
  });
}

}  // namespace paradiff::cli
