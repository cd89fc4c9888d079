// The paradiff subcommands: each registers its options on the CLI11 app and returns the action
// to run once parsing succeeded.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "paradiff/core/dtype.h"
#include "paradiff/dist/communicator.h"
#include "paradiff/parallel/parallel_config.h"

namespace paradiff::cli {

// Runs on every rank with the world communicator once the command line parsed.
using Action = std::function<int(dist::Communicator& world)>;

// The parallel flags: --ulysses-degree, --ring-degree, --rotate-method, --no-convert-to-fp32
// (diffusers' ContextParallelConfig fields; both degrees 1, the default, means no context
// parallelism), --ring-progress, and --cfg-degree where a command runs true CFG.
struct ParallelOptions {
  parallel::ContextParallelConfig context_parallel;
  int cfg_degree = 1;
  std::string ring_progress = "thread";

  parallel::ParallelConfig config() const;
};
void add_parallel_options(CLI::App& cmd, ParallelOptions& options, bool with_cfg);

// How the transformer's weights are held: --share-weights auto|on|off (one copy per host),
// --storage-dtype fp32|bf16 (layerwise casting) and --fully-shard-degree N (block weights split
// over N ranks of each context-parallel group).
struct WeightOptions {
  std::string share_weights = "auto", storage_dtype = "fp32";
  int fully_shard_degree = 1;
};
void add_weight_options(CLI::App& cmd, WeightOptions& options);

// --dtype's value as a compute precision: fp32 or bf16, anything else a clear error.
DType compute_dtype(const std::string& dtype);
// Fails (naming the value) when the folder --output would be written to does not exist.
void check_output_folder(const std::string& output);

// Each adds a subcommand to `app` and sets `action` when that subcommand is chosen.
void add_transformer_forward_command(CLI::App& app, Action& action);
void add_inspect_command(CLI::App& app, Action& action);
void add_bench_command(CLI::App& app, Action& action);
void add_compare_command(CLI::App& app, Action& action);
void add_generate_command(CLI::App& app, Action& action);
// paradiff serve: the HTTP server.
void add_serve_command(CLI::App& app, Action& action);
// encode-prompt, denoise, decode.
void add_staged_commands(CLI::App& app, Action& action);

}  // namespace paradiff::cli
