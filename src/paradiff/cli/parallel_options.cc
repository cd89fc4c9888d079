#include "paradiff/cli/commands.h"

namespace paradiff::cli {

void add_parallel_options(CLI::App& cmd, ParallelOptions& options, bool with_cfg) {
  auto& cp = options.context_parallel;
  cmd.add_option("--ulysses-degree", cp.ulysses_degree,
                 "context parallelism: processes splitting heads by all-to-all (Ulysses)")
      ->envname("PARADIFF_ULYSSES_DEGREE")
      ->capture_default_str();
  cmd.add_option("--ring-degree", cp.ring_degree,
                 "context parallelism: processes passing K/V around a ring")
      ->envname("PARADIFF_RING_DEGREE")
      ->capture_default_str();
  cmd.add_option("--rotate-method", cp.rotate_method,
                 "how ring attention moves K/V: p2p (overlapped), alltoall or allgather")
      ->envname("PARADIFF_ROTATE_METHOD")
      ->capture_default_str();
  cmd.add_option("--ring-progress", options.ring_progress,
                 "p2p ring: drive transfers from a helper thread, or by tests between query "
                 "chunks")
      ->envname("PARADIFF_RING_PROGRESS")
      ->check(CLI::IsMember({"thread", "test"}))
      ->capture_default_str();
  cmd.add_flag("--no-convert-to-fp32{false}", cp.convert_to_fp32,
               "ring: merge partial outputs in the compute dtype instead of fp32");
  if (with_cfg)
    cmd.add_option("--cfg-degree", options.cfg_degree,
                   "true CFG: 2 runs the conditional and unconditional predictions on two "
                   "rank groups at once")
        ->envname("PARADIFF_CFG_DEGREE")
        ->capture_default_str();
}

parallel::ParallelConfig ParallelOptions::config() const {
  parallel::ParallelConfig config;
  // Both degrees 1 (the default) means no context parallelism; anything else is validated as
  // diffusers' ContextParallelConfig.
  if (context_parallel.ring_degree != 1 || context_parallel.ulysses_degree != 1)
    config.context_parallel_config = context_parallel;
  config.cfg_degree = cfg_degree;
  config.ring_progress = parallel::parse_ring_progress(ring_progress);
  return config;
}

}  // namespace paradiff::cli
