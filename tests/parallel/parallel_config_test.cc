// Configuration checks, sequence sharding and the data-parallel split (no MPI needed).
#include <gtest/gtest.h>

#include "paradiff/parallel/communication_volume.h"
#include "paradiff/parallel/data_parallel.h"
#include "paradiff/parallel/parallel_config.h"
#include "paradiff/parallel/sequence_sharding.h"
#include "testing/test_util.h"

namespace paradiff::parallel {
namespace {

void expect_invalid(const ContextParallelConfig& c, int world, const std::string& needle) {
  try {
    c.validate(world);
    FAIL() << "accepted " << c.describe() << " on " << world << " processes";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ContextParallelConfig, RejectsEveryImpossibleConfigWithTheNumbers) {
  expect_invalid({1, 1, true, "p2p"}, 2, "needs ring_degree or ulysses_degree > 1");
  expect_invalid({0, 2, true, "p2p"}, 2, "ring_degree must be >= 1, got 0");
  expect_invalid({2, -1, true, "p2p"}, 2, "ulysses_degree must be >= 1, got -1");
  expect_invalid({2, 1, true, "ring"}, 2,
                 "rotate_method must be one of allgather, alltoall, "
                 "p2p; got 'ring'");
  expect_invalid({2, 2, true, "p2p"}, 2, "= 4 exceeds the world size (2 processes)");
  expect_invalid({1, 4, true, "p2p"}, 6, "world size (6 processes) is not a multiple of");
  EXPECT_NO_THROW((ContextParallelConfig{2, 2, true, "alltoall"}.validate(8)));
  EXPECT_NO_THROW((ContextParallelConfig{1, 3, true, "allgather"}.validate(3)));
  EXPECT_EQ((ContextParallelConfig{2, 2, true, "p2p"}.describe()), "unified 2x2 (p2p)");
  EXPECT_EQ(ContextParallelConfig{}.rotate(), RotateMethod::P2P);
}

TEST(ParallelConfig, AnyDegreesIncludingAllOneAndCfg) {
  ParallelConfig none;
  EXPECT_NO_THROW(none.validate(1));
  EXPECT_NO_THROW(none.validate(5));  // five replicas of one rank
  EXPECT_EQ(none.replica_degree(), 1);
  EXPECT_EQ(none.describe(), "one rank per replica");
  ParallelConfig c{ContextParallelConfig{2, 2, true, "p2p"}, 2};
  EXPECT_EQ(c.replica_degree(), 8);
  EXPECT_EQ(c.describe(), "cfg 2 x unified 2x2 (p2p)");
  EXPECT_NO_THROW(c.validate(16));
  auto expect_refused = [](const ParallelConfig& config, int world, const std::string& needle) {
    try {
      config.validate(world);
      FAIL() << "accepted " << config.describe() << " on " << world;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_refused(c, 12, "not a multiple of cfg_degree x ring_degree x ulysses_degree = 2 x 2 x 2");
  expect_refused(ParallelConfig{std::nullopt, 3}, 6, "cfg_degree must be 1 or 2");
  expect_refused(ParallelConfig{ContextParallelConfig{1, 1, true, "p2p"}}, 2,
                 "needs ring_degree or ulysses_degree > 1");
  EXPECT_EQ(parse_ring_progress("test"), RingProgress::Test);
  EXPECT_THROW(parse_ring_progress("poll"), Error);
}

// The theoretical volume, worked by hand for small layouts (bytes of one attention call).
TEST(CommunicationVolume, MatchesHandWorkedExamples) {
  // Ulysses 2, 5 heads (padded to 6: 3 per rank), D 4, f32; tokens 3 and 2.
  // Rank 0 sends q, k, v of its 3 tokens for rank 1's 3 heads: 3·3·3·4·4 = 432 bytes, then the
  // output of rank 1's 2 tokens for its own 3 heads: 2·3·4·4 = 96.
  EXPECT_EQ(attention_sent_bytes({1, 2, true, "p2p"}, 0, {3, 2}, 5, 4, 4), 432 + 96);
  EXPECT_EQ(attention_sent_bytes({1, 2, true, "p2p"}, 1, {3, 2}, 5, 4, 4), 288 + 144);
  // Ring 3 (p2p), 2 heads, D 4, bf16; tokens 4, 3, 3. Rank 1 sends its own block [k; v]
  // (2·3·2·4·2 = 96), then rank 0's (2·4·16 = 128).
  EXPECT_EQ(attention_sent_bytes({3, 1, true, "p2p"}, 1, {4, 3, 3}, 2, 4, 2), 96 + 128);
  EXPECT_EQ(attention_sent_bytes({3, 1, true, "alltoall"}, 1, {4, 3, 3}, 2, 4, 2), 96 + 128);
  // Allgather: its own block to both others.
  EXPECT_EQ(attention_sent_bytes({3, 1, true, "allgather"}, 1, {4, 3, 3}, 2, 4, 2), 2 * 96);
  // Unified 2x2, 2 heads (1 per Ulysses rank), D 2, f32, tokens 1 each: rank 3 (ring 1,
  // Ulysses 1) scatters 3·1·1·2·4 = 24, gathers 1·1·2·4 = 8, passes its ring block (the
  // Ulysses pair's 2 tokens) 2·2·1·2·4 = 32.
  EXPECT_EQ(attention_sent_bytes({2, 2, true, "p2p"}, 3, {1, 1, 1, 1}, 2, 2, 4), 24 + 8 + 32);
  EXPECT_EQ(gather_sent_bytes(100, 4), 300);
}

TEST(SequenceSharding, FirstRanksTakeTheExtraTokens) {
  EXPECT_EQ(shard_lengths(3969, 4), (std::vector<int64_t>{993, 992, 992, 992}));
  EXPECT_EQ(shard_lengths(2, 3), (std::vector<int64_t>{1, 1, 0}));
  for (int64_t total : {0, 1, 7, 64, 4097}) {
    for (int parts = 1; parts <= 5; ++parts) {
      int64_t next = 0;
      for (int i = 0; i < parts; ++i) {
        const Shard s = shard_of(total, parts, i);
        EXPECT_EQ(s.start, next);
        next += s.length;
      }
      EXPECT_EQ(next, total);
    }
  }
  EXPECT_THROW(shard_of(10, 2, 2), Error);
}

TEST(SequenceSharding, SplitAlongAnyDimCoversTheTensor) {
  auto rng = testing::make_rng();
  Tensor t = testing::random_uniform({2, 7, 3}, DType::F32, rng);
  std::vector<Tensor> parts;
  for (int i = 0; i < 3; ++i) parts.push_back(split_along(t, 1, 3, i));
  EXPECT_EQ(parts[0].shape(), (Shape{2, 3, 3}));
  EXPECT_EQ(parts[2].shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(testing::relative_error(concat(parts, 1), t), 0.0);
}

// Reference: accelerate's PartialState.split_between_processes on a list.
TEST(DataParallel, SplitBetweenProcessesMatchesAccelerate) {
  using V = std::vector<int64_t>;
  // 3 prompts on 2 processes: [0, 1] and [2]; padded: [2, 2].
  EXPECT_EQ(split_between_processes(3, 2, 0), (V{0, 1}));
  EXPECT_EQ(split_between_processes(3, 2, 1), (V{2}));
  EXPECT_EQ(split_between_processes(3, 2, 1, true), (V{2, 2}));
  // 5 on 3: [0,1] [2,3] [4]; padding repeats the last input: [4, 4].
  EXPECT_EQ(split_between_processes(5, 3, 1), (V{2, 3}));
  EXPECT_EQ(split_between_processes(5, 3, 2, true), (V{4, 4}));
  // 2 on 4: [0] [1] [] []; padded, the empty ones get the last input.
  EXPECT_EQ(split_between_processes(2, 4, 3), V{});
  EXPECT_EQ(split_between_processes(2, 4, 3, true), (V{1}));
  EXPECT_EQ(real_items(2, 4, 3), 0);
  // One process: everything, unchanged.
  EXPECT_EQ(split_between_processes(4, 1, 0, true), (V{0, 1, 2, 3}));
  // Evenly divisible: padding changes nothing.
  EXPECT_EQ(split_between_processes(6, 3, 2, true), (V{4, 5}));
  EXPECT_EQ(split_between_processes(0, 2, 1, true), V{});
  EXPECT_THROW(split_between_processes(3, 2, 2), Error);
}

}  // namespace
}  // namespace paradiff::parallel
