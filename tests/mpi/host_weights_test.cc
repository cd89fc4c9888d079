// One copy of the prepared weights per host (dist/host_weights.h): every rank of this test runs
// on one host, so with sharing the host's ranks together hold the weights once (PSS summed over
// the host ~1x the weights) and without it once per rank (~Nx); the outputs are bit-identical to
// a model loaded the old way (no weight store), and a first rank that fails to load stops the
// others instead of leaving them waiting.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>

#include "mpi_world.h"
#include "paradiff/core/process_memory.h"
#include "paradiff/dist/host_communicator.h"
#include "paradiff/engine/transformer_runner.h"
#include "testing/flux_inputs.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

using models::flux::FluxTransformer2DModel;
using models::flux::FluxTransformerConfig;
using models::flux::FluxTransformerInputs;

FluxTransformerConfig small_config() {
  FluxTransformerConfig c;
  c.num_attention_heads = 4;
  c.attention_head_dim = 64;
  c.num_layers = 2;
  c.num_single_layers = 2;
  c.joint_attention_dim = 256;
  c.in_channels = 16;
  c.out_channels = 16;
  c.pooled_projection_dim = 64;
  c.axes_dims_rope = {8, 28, 28};
  c.validate("test config");
  return c;
}

FluxTransformerInputs inputs_for(const FluxTransformerConfig& c) {
  std::mt19937_64 rng(5);
  return testing::random_flux_inputs(c, 1, 37, 11, 7, rng);
}

parallel::ParallelConfig ulysses_over_world() {
  parallel::ParallelConfig p;
  p.context_parallel_config =
      parallel::ContextParallelConfig{1, testing::world().size(), true, "p2p"};
  return p;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

TEST(HostWeights, OneCopyPerHostAndBitIdenticalOutputs) {
  dist::Communicator& world = testing::world();
  const auto config = small_config();
  const auto in = inputs_for(config);
  auto load = [&]() -> engine::TransformerModel {
    return FluxTransformer2DModel::with_random_weights(config, DType::F32, 3);
  };

  // The old way: no weight store, packed weights in ordinary tensor memory.
  auto plain = FluxTransformer2DModel::with_random_weights(config, DType::F32, 3);
  plain.enable_parallelism(*ulysses_over_world().context_parallel_config, world);
  const Tensor expected = plain.forward(in);

  engine::ForwardTiming shared, separate;
  {
    engine::TransformerRunner runner(world, ulysses_over_world(), load, dist::WeightSharing::On);
    EXPECT_EQ(runner.host().size(), world.size()) << "every rank of this test is on one host";
    EXPECT_TRUE(runner.weights().shared);
    EXPECT_EQ(runner.weights().arena->filling(), runner.host().rank() == 0);
    if (runner.host().rank() != 0) {
      EXPECT_EQ(runner.weights().arena->shared_bytes(), runner.weights().arena->used_bytes());
      EXPECT_EQ(runner.weights().arena->private_bytes(), 0u);
    }
    shared = runner.time_forwards(in, 1, false);
    // The segment has no name in the file system (nothing in /dev/shm can outlive the job): the
    // kernel shows it as an unlinked memfd.
    std::ifstream maps("/proc/self/maps");
    int mappings = 0;
    for (std::string line; std::getline(maps, line);) {
      if (line.find(WeightArena::kMappingName) == std::string::npos) continue;
      ++mappings;
      EXPECT_NE(line.find("/memfd:"), std::string::npos) << line;
    }
    EXPECT_GE(mappings, 1);
  }
  {
    engine::TransformerRunner runner(world, ulysses_over_world(), load, dist::WeightSharing::Off);
    EXPECT_FALSE(runner.weights().shared);
    separate = runner.time_forwards(in, 1, false);
  }
  EXPECT_TRUE(same_bits(shared.sample, expected));
  EXPECT_TRUE(same_bits(separate.sample, expected));

  const double weights = static_cast<double>(shared.weight_bytes);
  const int n = world.size();
  ASSERT_GT(weights, 8e6) << "the model must be large next to a page for PSS to say much";
  EXPECT_EQ(separate.weight_bytes, shared.weight_bytes);
  // Shared: the host holds the weights once (PSS summed over its ranks), each rank ~1/N of them.
  EXPECT_GE(shared.host_weights_pss_bytes, 0.95 * weights);
  EXPECT_LE(shared.host_weights_pss_bytes, 1.05 * weights);
  EXPECT_LE(shared.rank_weights_pss_bytes, 1.05 * weights / n + 4096 * 4);
  // Separate: once per rank.
  EXPECT_GE(separate.host_weights_pss_bytes, 0.95 * n * weights);
  EXPECT_LE(separate.host_weights_pss_bytes, 1.05 * n * weights);
  if (world.rank() == 0)
    std::printf("weights %.1f MB; host weight PSS shared %.1f MB, separate %.1f MB (%d ranks)\n",
                weights / 1e6, shared.host_weights_pss_bytes / 1e6,
                separate.host_weights_pss_bytes / 1e6, n);
}

TEST(HostWeights, FirstRankFailingStopsTheOthers) {
  dist::Communicator& world = testing::world();
  auto host = dist::host_communicator(world);
  const bool first = host->rank() == 0;
  try {
    dist::load_with_host_weights(*host, dist::WeightSharing::On, [&] {
      if (first) throw std::runtime_error("bad checkpoint");
    });
    ADD_FAILURE() << "loading should have failed on every rank";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(first ? "bad checkpoint" : "first rank failed"),
              std::string::npos)
        << e.what();
  }
  host->barrier();
}

TEST(HostWeights, ParsesTheSwitch) {
  EXPECT_EQ(dist::parse_weight_sharing("off"), dist::WeightSharing::Off);
  EXPECT_EQ(dist::parse_weight_sharing("on"), dist::WeightSharing::On);
  EXPECT_EQ(dist::parse_weight_sharing("auto"), dist::WeightSharing::Auto);
  EXPECT_THROW(dist::parse_weight_sharing("yes"), std::exception);
}

}  // namespace
}  // namespace paradiff
