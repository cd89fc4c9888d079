// paradiff transformer-forward: one FluxTransformer2DModel forward on inputs stored in a
// safetensors file, written to another: the debugging window onto the model, and how anyone
// checks paradiff against another implementation (tools/compare_diffusers uses it).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "paradiff/cli/commands.h"
#include "paradiff/core/logging.h"
#include "paradiff/core/memory.h"
#include "paradiff/core/threads.h"
#include "paradiff/core/timer.h"
#include "paradiff/io/safetensors.h"
#include "paradiff/io/safetensors_writer.h"
#include "paradiff/models/flux/flux_transformer.h"

namespace paradiff::cli {

namespace {

struct Options {
  std::string model, config, inputs, output, dtype = "fp32";
  int threads = 0;
  int repeat = 0;
  parallel::ContextParallelConfig cp;
};

models::flux::FluxTransformer2DModel load_model(const Options& o, DType compute) {
  namespace fs = std::filesystem;
  using models::flux::FluxTransformer2DModel;
  PARADIFF_CHECK(fs::exists(o.model), "--model '", o.model, "' does not exist");
  if (fs::is_directory(o.model)) {
    PARADIFF_CHECK(o.config.empty(), "--config is only for single-file checkpoints; the folder '",
                   o.model, "' has its own config.json");
    return FluxTransformer2DModel::from_pretrained(o.model, compute);
  }
  PARADIFF_CHECK(!o.config.empty(), "--model '", o.model,
                 "' is a single file: pass the diffusers config.json of the model with --config");
  return FluxTransformer2DModel::from_single_file(
      o.model, models::flux::FluxTransformerConfig::load(o.config), compute);
}

int run(const Options& o, dist::Communicator& world) {
  const DType compute = compute_dtype(o.dtype);
  if (o.threads > 0) set_num_threads(o.threads);
  // Check the parallel config before any heavy work; every rank checks the same thing.
  std::shared_ptr<parallel::DeviceMesh> mesh;
  if (cli::context_parallel_requested(o.cp)) {
    mesh = std::make_shared<parallel::DeviceMesh>(world, o.cp);
    PARADIFF_CHECK(mesh->data_parallel_size() == 1,
                   "transformer-forward runs one input: ", "ring_degree x ulysses_degree (",
                   o.cp.degree(), ") must equal the number of processes (", world.size(), ")");
  }
  // Open the inputs before the (slow) model load so that a bad file fails fast.
  const auto in = models::flux::FluxTransformerInputs::load(o.inputs);
  check_output_folder(o.output);

  Stopwatch load;
  const auto model = load_model(o, compute);
  model.validate_inputs(in);
  log_info("loaded ", o.model, " in ", load.seconds(), " s (", dtype_name(compute), " compute, ",
           num_threads(), " threads)");

  Tensor sample;
  std::vector<double> ms;
  if (o.repeat > 0) model.forward(in);  // warm-up: primitive creation, page faults
  for (int i = 0; i < std::max(1, o.repeat); ++i) {
    Stopwatch sw;
    sample = model.forward(in);
    ms.push_back(sw.milliseconds());
  }
  std::sort(ms.begin(), ms.end());
  // Every rank holds the gathered output; rank 0 writes it and reports.
  int64_t peak = peak_bytes();
  world.allreduce(&peak, 1, dist::ReduceType::I64, dist::ReduceOp::Max);
  if (world.rank() == 0) {
    write_safetensors(o.output, {{"sample", sample}});
    std::printf("forward_ms: %.3f\n", ms[ms.size() / 2]);
    std::printf("peak_memory_bytes: %lld (largest rank)\n", static_cast<long long>(peak));
  }
  return 0;
}

}  // namespace

void add_transformer_forward_command(CLI::App& app, Action& action) {
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "transformer-forward",
      "Run one FluxTransformer2DModel forward on inputs from a safetensors file");
  cmd->add_option("--model", opts->model,
                  "diffusers transformer folder, or a Black Forest Labs single-file checkpoint")
      ->required()
      ->envname("PARADIFF_MODEL");
  cmd->add_option("--config", opts->config, "config.json for a single-file checkpoint");
  cmd->add_option("--inputs", opts->inputs,
                  "safetensors with hidden_states, encoder_hidden_states, pooled_projections, "
                  "timestep, img_ids, txt_ids[, guidance]")
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
  add_context_parallel_options(*cmd, opts->cp);
  cmd->callback([opts, &action] {
    action = [opts](dist::Communicator& world) { return run(*opts, world); };
  });
}

}  // namespace paradiff::cli
