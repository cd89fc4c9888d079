// Transformer block weights sharded across the ranks of a context-parallel group
// (--fully-shard-degree, dist/sharded_block_weights.h): the output is bit-identical to the same
// context-parallel run with every weight resident (the gathered packed bytes are the ones each
// rank would have packed) and within the context-parallel tolerance of one process; each rank
// holds ~ weights / N + two block buffers (the weight PSS, as host_weights_test measures it), and
// each forward gathers (N - 1) / N of the blocks' weights per rank. Bad degrees are refused.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <utility>

#include "mpi_world.h"
#include "paradiff/engine/transformer_runner.h"
#include "testing/flux_inputs.h"
#include "testing/scoped_env.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

using models::flux::FluxTransformer2DModel;
using models::flux::FluxTransformerConfig;

FluxTransformerConfig config_with(int64_t double_layers, int64_t single_layers) {
  FluxTransformerConfig c;
  c.num_attention_heads = 4;
  c.attention_head_dim = 64;
  c.num_layers = double_layers;
  c.num_single_layers = single_layers;
  c.joint_attention_dim = 256;
  c.in_channels = 16;
  c.out_channels = 16;
  c.pooled_projection_dim = 64;
  c.axes_dims_rope = {8, 28, 28};
  c.validate("test config");
  return c;
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

engine::TransformerRunner::Loader random_model(const FluxTransformerConfig& c, DType compute) {
  return [c, compute]() -> engine::TransformerModel {
    return FluxTransformer2DModel::with_random_weights(c, compute, 11);
  };
}

// Double and single blocks (two sizes), an odd count (the first block is not prefetched after
// the last) and a batch of two (the blocks run twice per forward), in fp32 and bf16.
TEST(FullyShard, OutputsMatchResidentWeightsAndOneProcess) {
  dist::Communicator& world = testing::world();
  const auto config = config_with(1, 4);
  std::mt19937_64 rng(7);
  const auto in = testing::random_flux_inputs(config, 2, 37, 11, 7, rng);
  for (DType compute : {DType::F32, DType::BF16}) {
    // bf16 (other packed layouts, same store) once: at 2 ranks, keeping the 3- and 4-rank runs
    // short.
    if (compute == DType::BF16 && world.size() > 2) continue;
    auto single = FluxTransformer2DModel::with_random_weights(config, compute, 11);
    const Tensor one_process = single.forward(in);
    engine::ForwardTiming resident, sharded;
    {
      engine::TransformerRunner runner(world, ulysses_over_world(), random_model(config, compute),
                                       dist::WeightSharing::Off);
      resident = runner.time_forwards(in, 1, false);
    }
    // (degree, gathered with MPI): every rank of this test is on one host, where the gathers
    // copy from the mapped shards of the others unless PARADIFF_SHARD_GATHER=mpi.
    std::vector<std::pair<int, bool>> cases{{world.size(), false}};
    if (compute == DType::F32) cases.push_back({world.size(), true});
    if (world.size() == 4 && compute == DType::F32) cases.push_back({2, false});  // {0,2}, {1,3}
    for (auto [degree, mpi] : cases) {
      std::optional<testing::ScopedEnv> gather;
      if (mpi) gather.emplace("PARADIFF_SHARD_GATHER", "mpi");
      engine::TransformerRunner runner(world, ulysses_over_world(), random_model(config, compute),
                                       dist::WeightSharing::Auto, degree);
      gather.reset();
      ASSERT_NE(runner.sharded_weights(), nullptr);
      EXPECT_EQ(runner.sharded_weights()->degree(), degree);
      EXPECT_EQ(runner.sharded_weights()->gathers_locally(), !mpi);
      EXPECT_EQ(runner.sharded_weights()->blocks(), 5);
      // Warm-up and one timed forward: the second starts with the blocks the first one left.
      sharded = runner.time_forwards(in, 1, true);
      EXPECT_TRUE(same_bits(sharded.sample, resident.sample))
          << dtype_name(compute) << ", degree " << degree << ", rank " << world.rank();
      const double err = testing::relative_error(sharded.sample, one_process);
      EXPECT_LE(err, compute == DType::F32 ? 1e-5 : 2e-2) << dtype_name(compute);
      // Every block gathered once per batch element: (N - 1) / N of its bytes received.
      const int64_t blocks = sharded.block_weight_bytes;
      EXPECT_EQ(sharded.gathered_bytes_per_rank, 2 * blocks / degree * (degree - 1));
      // One copy of the weights is the same, up to the blocks' padding to N x 64 bytes.
      EXPECT_NEAR(static_cast<double>(sharded.weight_bytes),
                  static_cast<double>(resident.weight_bytes), 5 * 64 * degree + 64);
      if (world.rank() == 0)
        std::printf(
            "  %s, degree %d (%s): relative error %.3g; %.2f MB gathered per rank per "
            "forward\n",
            std::string(dtype_name(compute)).c_str(), degree, mpi ? "MPI" : "copies", err,
            sharded.gathered_bytes_per_rank / 1e6);
    }
  }
}

// Equal blocks, so that weights / N + two blocks is well under the weights: the weight PSS of
// each rank is what the store says it holds, and far under one full copy (it would not be if
// nothing were sharded).
TEST(FullyShard, EachRankHoldsItsShardAndTwoBlocks) {
  dist::Communicator& world = testing::world();
  const int n = world.size();
  const auto config = config_with(0, 10);
  std::mt19937_64 rng(9);
  const auto in = testing::random_flux_inputs(config, 1, 37, 11, 7, rng);
  engine::ForwardTiming full, sharded;
  {
    engine::TransformerRunner runner(world, ulysses_over_world(), random_model(config, DType::F32),
                                     dist::WeightSharing::Off);
    full = runner.time_forwards(in, 1, false);
  }
  int64_t outside = 0;
  {
    engine::TransformerRunner runner(world, ulysses_over_world(), random_model(config, DType::F32),
                                     dist::WeightSharing::Off, n);
    const auto& store = *runner.sharded_weights();
    outside = runner.weights().arena->used_bytes();  // embedders and head, replicated
    sharded = runner.time_forwards(in, 1, true);
    EXPECT_EQ(store.shard_bytes() * n, store.block_bytes());
    EXPECT_EQ(store.buffer_bytes(), 2 * store.block_bytes() / 10);
    EXPECT_EQ(sharded.gathered_bytes_per_rank, store.block_bytes() / n * (n - 1));
    EXPECT_EQ(store.gathers(), 10);
  }
  EXPECT_TRUE(same_bits(sharded.sample, full.sample));
  const double weights = static_cast<double>(full.weight_bytes);
  ASSERT_GT(weights, 8e6) << "the model must be large next to a page for PSS to say much";
  // Blocks are nearly all of the weights; padding adds at most 64 x N bytes per block.
  EXPECT_GE(static_cast<double>(sharded.block_weight_bytes), 0.9 * weights);
  EXPECT_LE(sharded.weight_bytes, full.weight_bytes + 10 * 64 * n);
  const double held =
      static_cast<double>(outside + sharded.shard_bytes + sharded.block_buffer_bytes);
  const double blocks = static_cast<double>(sharded.block_weight_bytes);
  EXPECT_NEAR(blocks, weights - outside, 10 * 64 * n);
  EXPECT_DOUBLE_EQ(held, outside + blocks / n + 0.2 * blocks);
  // The kernel agrees (PSS of the weight segments; private, so PSS = RSS here).
  EXPECT_LE(sharded.rank_weights_pss_bytes, 1.02 * held + 4096 * 8);
  EXPECT_GE(sharded.rank_weights_pss_bytes, 0.98 * held - 4096 * 8);
  EXPECT_LE(sharded.rank_weights_pss_bytes, 0.8 * full.rank_weights_pss_bytes);
  if (world.rank() == 0)
    std::printf("weights %.1f MB; weight PSS per rank %.1f MB resident, %.1f MB sharded by %d\n",
                weights / 1e6, full.rank_weights_pss_bytes / 1e6,
                sharded.rank_weights_pss_bytes / 1e6, n);
}

// Qwen-Image's blocks go through the same seam: 5 dual-stream blocks, a batch of two.
TEST(FullyShard, QwenImageOutputsMatchResidentWeights) {
  dist::Communicator& world = testing::world();
  auto rng = testing::make_rng();
  models::qwen_image::QwenImageTransformerConfig c;
  c.num_attention_heads = 4;
  c.attention_head_dim = 32;
  c.axes_dims_rope = {8, 12, 12};
  c.num_layers = 5;
  c.in_channels = 16;
  c.out_channels = 4;
  c.joint_attention_dim = 24;
  models::qwen_image::QwenImageTransformerInputs in;
  in.hidden_states = testing::random_normal({2, 35, c.in_channels}, DType::F32, rng);
  in.encoder_hidden_states = testing::random_normal({2, 9, c.joint_attention_dim}, DType::F32, rng);
  in.timestep = testing::random_uniform({2}, DType::F32, rng, 0.0f, 1.0f);
  in.img_shapes.assign(2, {{1, 5, 7}});
  auto load = [c]() -> engine::TransformerModel {
    return models::qwen_image::QwenImageTransformer2DModel::with_random_weights(c, DType::F32, 4);
  };
  engine::ForwardTiming resident, sharded;
  {
    engine::TransformerRunner runner(world, ulysses_over_world(), load, dist::WeightSharing::Off);
    resident = runner.time_forwards(in, 1, false);
  }
  {
    engine::TransformerRunner runner(world, ulysses_over_world(), load, dist::WeightSharing::Off,
                                     world.size());
    EXPECT_EQ(runner.sharded_weights()->blocks(), 5);
    sharded = runner.time_forwards(in, 1, true);
  }
  EXPECT_TRUE(same_bits(sharded.sample, resident.sample)) << "rank " << world.rank();
  EXPECT_GT(sharded.gathered_bytes_per_rank, 0);
}

TEST(FullyShard, RefusesBadDegreesNamingThem) {
  dist::Communicator& world = testing::world();
  const auto config = config_with(0, 2);
  const int n = world.size();
  try {
    engine::TransformerRunner runner(world, ulysses_over_world(), random_model(config, DType::F32),
                                     dist::WeightSharing::Off, n + 1);
    ADD_FAILURE() << "a degree that does not divide the group must be refused";
  } catch (const std::exception& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(str_cat("--fully-shard-degree ", n + 1)), std::string::npos) << what;
    EXPECT_NE(what.find(str_cat("= ", n, ")")), std::string::npos) << what;
  }
  try {
    engine::TransformerRunner runner(world, ulysses_over_world(), random_model(config, DType::F32),
                                     dist::WeightSharing::On, n);
    ADD_FAILURE() << "sharding with --share-weights on must be refused";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("--share-weights on"), std::string::npos) << e.what();
  }
  world.barrier();
}

}  // namespace
}  // namespace paradiff
