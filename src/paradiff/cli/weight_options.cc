#include "paradiff/cli/commands.h"

namespace paradiff::cli {

void add_weight_options(CLI::App& cmd, WeightOptions& options) {
  cmd.add_option("--share-weights", options.share_weights,
                 "one copy of the transformer's prepared weights per host (auto: when several "
                 "ranks that need the same weights share one)")
      ->envname("PARADIFF_SHARE_WEIGHTS")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  cmd.add_option("--storage-dtype", options.storage_dtype,
                 "dtype the transformer's GEMM weights are kept in: bf16 or fp8 (float8 e4m3) "
                 "narrows them for fp32 compute, fp8 also for bf16 compute (diffusers' "
                 "enable_layerwise_casting)")
      ->envname("PARADIFF_STORAGE_DTYPE")
      ->capture_default_str();
  cmd.add_option("--fully-shard-degree", options.fully_shard_degree,
                 "split the transformer blocks' weights over this many ranks of each "
                 "context-parallel group, each block all-gathered just before it runs")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
}

}  // namespace paradiff::cli
