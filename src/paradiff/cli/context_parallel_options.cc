#include "paradiff/cli/commands.h"

namespace paradiff::cli {

void add_context_parallel_options(CLI::App& cmd, parallel::ContextParallelConfig& config) {
  cmd.add_option("--ulysses-degree", config.ulysses_degree,
                 "context parallelism: processes splitting heads by all-to-all (Ulysses)")
      ->envname("PARADIFF_ULYSSES_DEGREE")
      ->capture_default_str();
  cmd.add_option("--ring-degree", config.ring_degree,
                 "context parallelism: processes passing K/V around a ring")
      ->envname("PARADIFF_RING_DEGREE")
      ->capture_default_str();
  cmd.add_option("--rotate-method", config.rotate_method,
                 "how ring attention moves K/V: p2p (overlapped), alltoall or allgather")
      ->envname("PARADIFF_ROTATE_METHOD")
      ->capture_default_str();
  cmd.add_flag("--no-convert-to-fp32{false}", config.convert_to_fp32,
               "ring: merge partial outputs in the compute dtype instead of fp32");
}

bool context_parallel_requested(const parallel::ContextParallelConfig& config) {
  return config.ring_degree != 1 || config.ulysses_degree != 1;
}

}  // namespace paradiff::cli
