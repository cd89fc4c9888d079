// --text-encoder-2-device-map executed across ranks: each rank binds only the T5 units its map
// gives it, the owners hand the hidden states on, and prompt_embeds equal the single-process
// ones bit for bit (fp32 and bf16, same thread count per rank); the parameters each rank bound
// are its share of the map.
#include <gtest/gtest.h>

#include <random>

#include "mpi_world.h"
#include "paradiff/core/memory.h"
#include "paradiff/engine/engine.h"
#include "paradiff/models/t5/t5_encoder_model.h"
#include "paradiff/models/t5/t5_module_tree.h"
#include "paradiff/parallel/placement/model_device_map.h"
#include "placement_checks.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

using models::t5::T5EncoderModel;

const std::string kTinyT5 = "tests/fixtures/flux_pipeline/tiny/text_encoder_2";

// At 2 ranks accelerate's "sequential" (golden: the embedding on rank 0, the blocks and the final
// norm on rank 1) and a map that goes back and forth (1 -> 0 -> 1 -> 0); at 3 ranks
// "sequential" (golden: one unit run per rank) and an explicit map ending in the middle rank.
std::vector<std::pair<std::string, parallel::DeviceMap>> t5_maps(const parallel::ModuleTree& tree,
                                                                 int ranks) {
  using testing::fp32_map;
  if (ranks == 2)
    return {fp32_map(tree, "sequential", 2, "0=200000,1=200000"),
            fp32_map(tree, "tiny_t5_back_and_forth.json", 2)};
  return {fp32_map(tree, "sequential", 3, "0=180000,1=40000,2=40000"),
          fp32_map(tree, "tiny_t5_three_stages.json", 3)};
}

TEST(T5Placement, TinyEncoderRunsSplitAndBitIdentical) {
  auto& world = testing::world();
  if (world.size() != 2 && world.size() != 3) GTEST_SKIP() << "runs at 2 and 3 ranks";
  const std::string folder = testing::source_path(kTinyT5);
  const parallel::ModuleTree tree = models::t5::t5_encoder_module_tree(folder);
  // Two prompts of 7 tokens, every id in the vocabulary (the same on every rank).
  auto rng = testing::make_rng();
  Tensor ids = Tensor::empty({2, 7}, DType::I64);
  std::uniform_int_distribution<int64_t> id(0, 1127);
  for (int64_t i = 0; i < ids.numel(); ++i) ids.data<int64_t>()[i] = id(rng);
  for (const auto& [map_name, map] : t5_maps(tree, world.size())) {
    SCOPED_TRACE(map_name);
    const auto [mine, on_disk] = testing::map_share(tree, map);
    ASSERT_EQ(on_disk, 0);
    for (DType compute : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(dtype_name(compute));
      Tensor want;
      int64_t full_parameters = 0;
      {
        const auto single = T5EncoderModel::from_pretrained(folder, compute);
        full_parameters = single.parameter_bytes();
        want = single.forward(ids);
      }
      const auto placed = T5EncoderModel::from_pretrained_placed(folder, compute, map, world);
      EXPECT_TRUE(placed.is_placed());
      // The weights were split: each rank bound something and less than the whole encoder, the
      // ranks together bound it once, and in fp32 each rank's bytes are its share of the map.
      // (Resident bytes say little here: an fp32 embedding is a view of the mapped file.)
      int64_t bound = placed.parameter_bytes();
      EXPECT_GT(bound, 0) << "rank " << world.rank() << " bound nothing";
      EXPECT_LT(bound, full_parameters) << "rank " << world.rank() << " bound everything";
      if (compute == DType::F32) {
        EXPECT_EQ(bound, mine) << "rank " << world.rank();
        EXPECT_EQ(full_parameters,
                  parallel::compute_module_sizes(tree, SafetensorsDType::F32).total());
      }
      world.allreduce(&bound, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
      EXPECT_EQ(bound, full_parameters);
      world.reset_stats();
      const Tensor got = placed.forward(ids);
      testing::expect_bit_identical(got, want, "placed prompt_embeds");
      // The hidden states (B, S, d_model) F32 crossed every boundary between owners.
      const int64_t sent = testing::bytes_sent_by_all(world);
      EXPECT_GE(sent, int64_t{2} * 7 * 32 * 4 * (world.size() - 1));
    }
  }
}

// Through the engine: the FLUX pipeline with T5 placed by its own map (at 2 ranks alone, by
// accelerate's "sequential"; at 3 ranks with the transformer placed too) gives the latents and
// images of one process bit for bit, with two prompts and true CFG.
TEST(T5Placement, GenerateWithTextEncoder2DeviceMapIsBitIdentical) {
  auto& world = testing::world();
  if (world.size() != 2 && world.size() != 3) GTEST_SKIP() << "runs at 2 and 3 ranks";
  const std::string model = testing::source_path("tests/fixtures/flux_pipeline/tiny");
  engine::GenerationRequest request;
  request.height = 32, request.width = 48;
  request.num_inference_steps = 2;
  request.max_sequence_length = 8;
  request.seed = 5;
  request.prompt = {"a red circle", "a blue square"};
  request.negative_prompt = {"blurry"};
  request.true_cfg_scale = 2.0f;
  engine::EngineOptions options;
  options.model = model;
  const std::string maps = testing::source_path("tests/fixtures/placement/maps/");
  if (world.size() == 2) {
    options.text_encoder_2_device_map = "sequential";
    options.max_memory = "0=200000,1=200000";
  } else {
    options.text_encoder_2_device_map = maps + "tiny_t5_three_stages.json";
    options.transformer_device_map = maps + "tiny_three_stages.json";
  }
  engine::Engine engine(world, options);
  EXPECT_EQ(engine.mesh().size(parallel::MeshDim::Stage), world.size());
  engine.mesh().reset_comm_stats();
  const auto result = engine.run(request);
  int64_t stage_bytes = engine.mesh().comm(parallel::MeshDim::Stage).stats().bytes_sent;
  world.allreduce(&stage_bytes, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
  // At least the T5 hidden states (2 prompts x 8 tokens x 32 x 4 bytes, positive and negative).
  EXPECT_GE(stage_bytes, 2 * 2 * 8 * 32 * 4);
  if (world.rank() != 0) return;
  EXPECT_NE(engine.placement_report().find("\"text_encoder_2\":{\"shared\":0"), std::string::npos)
      << engine.placement_report();
  testing::expect_same_images(result, testing::run_on_one_process(model, request), 2);
}

// "disk" units (block 0 with the position table, the final norm; then the embedding and block
// 1) run on rank 0, streamed from the folder's model.safetensors: prompt_embeds equal one
// process's bit for bit, nobody binds the disk share, and a forward leaves nothing resident but
// its output.
TEST(T5Placement, DiskUnitsAreStreamedAndBitIdentical) {
  auto& world = testing::world();
  if (world.size() != 2) GTEST_SKIP() << "runs at 2 ranks";
  const std::string folder = testing::source_path(kTinyT5);
  const parallel::ModuleTree tree = models::t5::t5_encoder_module_tree(folder);
  using parallel::DeviceKey;
  const std::vector<std::pair<std::string, parallel::DeviceMap>> maps{
      {"block 0 and the final norm on disk",
       {{"shared", DeviceKey::rank(1)},
        {"encoder.embed_tokens", DeviceKey::rank(1)},
        {"encoder.block.0", DeviceKey::disk()},
        {"encoder.block.1", DeviceKey::rank(1)},
        {"encoder.final_layer_norm", DeviceKey::disk()},
        {"encoder.dropout", DeviceKey::rank(0)}}},
      {"the embedding and block 1 on disk",
       {{"shared", DeviceKey::disk()},
        {"encoder.embed_tokens", DeviceKey::disk()},
        {"encoder.block.0", DeviceKey::rank(1)},
        {"encoder.block.1", DeviceKey::disk()},
        {"encoder.final_layer_norm", DeviceKey::rank(1)},
        {"encoder.dropout", DeviceKey::rank(1)}}}};
  auto rng = testing::make_rng();
  Tensor ids = Tensor::empty({2, 7}, DType::I64);
  std::uniform_int_distribution<int64_t> id(0, 1127);
  for (int64_t i = 0; i < ids.numel(); ++i) ids.data<int64_t>()[i] = id(rng);
  for (const auto& [map_name, map] : maps) {
    SCOPED_TRACE(map_name);
    const auto [mine, on_disk] = testing::map_share(tree, map);
    ASSERT_GT(on_disk, 0);
    for (DType compute : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(dtype_name(compute));
      Tensor want;
      int64_t full_parameters = 0;
      {
        const auto single = T5EncoderModel::from_pretrained(folder, compute);
        full_parameters = single.parameter_bytes();
        want = single.forward(ids);
      }
      const auto placed = T5EncoderModel::from_pretrained_placed(folder, compute, map, world);
      int64_t bound = placed.parameter_bytes();
      if (compute == DType::F32) {
        EXPECT_EQ(bound, mine) << "rank " << world.rank();
      }
      world.allreduce(&bound, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
      if (compute == DType::F32) {
        EXPECT_EQ(bound, full_parameters - on_disk);
      }
      EXPECT_LT(bound, full_parameters) << "the disk share was bound";
      for (int pass = 0; pass < 2; ++pass) {  // streamed afresh at every forward
        const int64_t before_forward = current_bytes();
        const Tensor got = placed.forward(ids);
        testing::expect_bit_identical(got, want, "placed prompt_embeds with disk units");
        EXPECT_EQ(current_bytes() - before_forward, got.nbytes())
            << "streamed units must not stay resident after the forward";
      }
    }
  }
}

void expect_refused(const std::string& folder, const parallel::DeviceMap& map,
                    const std::string& needle) {
  try {
    T5EncoderModel::from_pretrained_placed(folder, DType::F32, map, testing::world());
    ADD_FAILURE() << "not refused: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(T5Placement, SplitBlocksAreRefused) {
  if (testing::world().size() != 2) GTEST_SKIP() << "runs at 2 ranks";
  const std::string folder = testing::source_path(kTinyT5);
  using parallel::DeviceKey;
  const parallel::DeviceMap split{{"shared", DeviceKey::rank(0)},
                                  {"encoder.embed_tokens", DeviceKey::rank(0)},
                                  {"encoder.block.0", DeviceKey::rank(1)},
                                  {"encoder.block.1.layer.0", DeviceKey::rank(0)},
                                  {"encoder.block.1.layer.1", DeviceKey::rank(1)},
                                  {"encoder.final_layer_norm", DeviceKey::rank(1)}};
  expect_refused(folder, split, "encoder.block.1");
}

}  // namespace
}  // namespace paradiff
