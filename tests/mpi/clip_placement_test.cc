// --text-encoder-device-map executed across ranks: each rank binds only the CLIP units its map
// gives it, the owners hand the hidden states on, and last_hidden_state and pooler_output equal
// the single-process ones bit for bit (fp32 and bf16, same thread count per rank); the
// parameters each rank bound are its share of the map.
#include <gtest/gtest.h>

#include <random>

#include "mpi_world.h"
#include "paradiff/core/memory.h"
#include "paradiff/engine/engine.h"
#include "paradiff/models/clip/clip_module_tree.h"
#include "paradiff/models/clip/clip_text_model.h"
#include "paradiff/parallel/placement/model_device_map.h"
#include "placement_checks.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

using models::clip::CLIPTextModel;

const std::string kTiny = "tests/fixtures/flux_pipeline/tiny";

// At 2 ranks accelerate's "auto" (golden: the embeddings on rank 0, the layers and the final
// norm on rank 1) and a map that goes back and forth; at 3 ranks accelerate's "balanced_low_0"
// (golden: nothing on rank 0) and a map ending in the middle rank.
std::vector<std::pair<std::string, parallel::DeviceMap>> clip_maps(const parallel::ModuleTree& tree,
                                                                   int ranks) {
  using testing::fp32_map;
  if (ranks == 2)
    return {fp32_map(tree, "auto", 2, "0=400000,1=400000"),
            fp32_map(tree, "tiny_clip_back_and_forth.json", 2)};
  return {fp32_map(tree, "balanced_low_0", 3, "0=400000,1=400000,2=400000"),
          fp32_map(tree, "tiny_clip_three_stages.json", 3)};
}

// The device `map` gives a tensor: its longest key covering the name.
parallel::DeviceKey device_of(const parallel::DeviceMap& map, const std::string& tensor) {
  size_t best = 0;
  parallel::DeviceKey device = parallel::DeviceKey::disk();
  bool found = false;
  for (const auto& [key, value] : map)
    if (key.empty() || tensor == key || tensor.rfind(key + ".", 0) == 0)
      if (!found || key.size() >= best) best = key.size(), device = value, found = true;
  return device;
}

TEST(ClipPlacement, TinyEncoderRunsSplitAndBitIdentical) {
  auto& world = testing::world();
  if (world.size() != 2 && world.size() != 3) GTEST_SKIP() << "runs at 2 and 3 ranks";
  const std::string folder = testing::source_path(kTiny + "/text_encoder");
  const parallel::ModuleTree tree = models::clip::clip_text_module_tree(folder);
  // Two prompts of 9 tokens, each with an EOS (id 2) somewhere, the same on every rank.
  auto rng = testing::make_rng();
  Tensor ids = Tensor::empty({2, 9}, DType::I64);
  std::uniform_int_distribution<int64_t> id(3, 2519);
  for (int64_t i = 0; i < ids.numel(); ++i) ids.data<int64_t>()[i] = id(rng);
  ids.data<int64_t>()[6] = 2;
  ids.data<int64_t>()[9 + 3] = 2;
  for (const auto& [map_name, map] : clip_maps(tree, world.size())) {
    SCOPED_TRACE(map_name);
    const auto [mine, on_disk] = testing::map_share(tree, map);
    ASSERT_EQ(on_disk, 0);
    for (DType compute : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(dtype_name(compute));
      models::clip::CLIPTextModelOutput want;
      int64_t full_parameters = 0;
      {
        const auto single = CLIPTextModel::from_pretrained(folder, compute);
        full_parameters = single.parameter_bytes();
        want = single.forward(ids);
      }
      const auto placed = CLIPTextModel::from_pretrained_placed(folder, compute, map, world);
      EXPECT_TRUE(placed.is_placed());
      // The weights were split: each rank bound its share and less than the whole encoder (fp32:
      // exactly the map's bytes, the position_ids buffer aside, which is not a parameter), and
      // the ranks together bound it once.
      int64_t bound = placed.parameter_bytes();
      EXPECT_LT(bound, full_parameters) << "rank " << world.rank() << " bound everything";
      if (compute == DType::F32) {
        const auto owner = device_of(map, "embeddings.position_ids");
        const int64_t position_ids =
            owner.is_rank() && owner.rank_index() == world.rank() ? 77 * 8 : 0;
        EXPECT_EQ(bound, mine - position_ids) << "rank " << world.rank();
      }
      world.allreduce(&bound, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
      EXPECT_EQ(bound, full_parameters);
      world.reset_stats();
      const auto got = placed.forward(ids);
      testing::expect_bit_identical(got.last_hidden_state, want.last_hidden_state,
                                    "placed last_hidden_state");
      testing::expect_bit_identical(got.pooler_output, want.pooler_output, "placed pooler_output");
      const int64_t sent = testing::bytes_sent_by_all(world);
      EXPECT_GE(sent, int64_t{2} * 9 * 32 * 4);  // at least one hand-off of (B, S, hidden)
    }
  }
}

// "disk" units (the embeddings and layer 1; then layer 0 and the final norm) run on rank 0,
// streamed from the folder's model.safetensors: both outputs equal one process's bit for bit,
// nobody binds the disk share, and a forward leaves nothing resident but its outputs.
TEST(ClipPlacement, DiskUnitsAreStreamedAndBitIdentical) {
  auto& world = testing::world();
  if (world.size() != 2) GTEST_SKIP() << "runs at 2 ranks";
  const std::string folder = testing::source_path(kTiny + "/text_encoder");
  const parallel::ModuleTree tree = models::clip::clip_text_module_tree(folder);
  using parallel::DeviceKey;
  const std::vector<std::pair<std::string, parallel::DeviceMap>> maps{
      {"the embeddings and layer 1 on disk",
       {{"embeddings", DeviceKey::disk()},
        {"encoder.layers.0", DeviceKey::rank(1)},
        {"encoder.layers.1", DeviceKey::disk()},
        {"final_layer_norm", DeviceKey::rank(1)}}},
      {"layer 0 and the final norm on disk",
       {{"embeddings", DeviceKey::rank(1)},
        {"encoder.layers.0", DeviceKey::disk()},
        {"encoder.layers.1", DeviceKey::rank(1)},
        {"final_layer_norm", DeviceKey::disk()}}}};
  auto rng = testing::make_rng();
  Tensor ids = Tensor::empty({2, 9}, DType::I64);
  std::uniform_int_distribution<int64_t> id(3, 2519);
  for (int64_t i = 0; i < ids.numel(); ++i) ids.data<int64_t>()[i] = id(rng);
  ids.data<int64_t>()[4] = 2;
  ids.data<int64_t>()[9 + 7] = 2;
  for (const auto& [map_name, map] : maps) {
    SCOPED_TRACE(map_name);
    const auto [mine, on_disk] = testing::map_share(tree, map);
    ASSERT_GT(on_disk, 0);
    // The old position_ids buffer is counted by the map, never bound as a parameter.
    const auto ids_owner = device_of(map, "embeddings.position_ids");
    const int64_t position_ids = 77 * 8;
    for (DType compute : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(dtype_name(compute));
      models::clip::CLIPTextModelOutput want;
      int64_t full_parameters = 0;
      {
        const auto single = CLIPTextModel::from_pretrained(folder, compute);
        full_parameters = single.parameter_bytes();
        want = single.forward(ids);
      }
      const auto placed = CLIPTextModel::from_pretrained_placed(folder, compute, map, world);
      int64_t bound = placed.parameter_bytes();
      if (compute == DType::F32) {
        const bool holds_ids = ids_owner.is_rank() && ids_owner.rank_index() == world.rank();
        EXPECT_EQ(bound, mine - (holds_ids ? position_ids : 0)) << "rank " << world.rank();
      }
      world.allreduce(&bound, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
      if (compute == DType::F32) {
        EXPECT_EQ(bound, full_parameters - on_disk + (ids_owner.is_disk() ? position_ids : 0));
      }
      EXPECT_LT(bound, full_parameters) << "the disk share was bound";
      for (int pass = 0; pass < 2; ++pass) {  // streamed afresh at every forward
        const int64_t before_forward = current_bytes();
        const auto got = placed.forward(ids);
        testing::expect_bit_identical(got.last_hidden_state, want.last_hidden_state,
                                      "placed last_hidden_state with disk units");
        testing::expect_bit_identical(got.pooler_output, want.pooler_output,
                                      "placed pooler_output with disk units");
        EXPECT_EQ(current_bytes() - before_forward,
                  got.last_hidden_state.nbytes() + got.pooler_output.nbytes())
            << "streamed units must not stay resident after the forward";
      }
    }
  }
}

// Through the engine: the FLUX pipeline with CLIP placed by its own map (at 2 ranks alone, by
// accelerate's "auto"; at 3 ranks with T5 and the transformer placed too) gives the latents and
// images of one process bit for bit.
TEST(ClipPlacement, GenerateWithTextEncoderDeviceMapIsBitIdentical) {
  auto& world = testing::world();
  if (world.size() != 2 && world.size() != 3) GTEST_SKIP() << "runs at 2 and 3 ranks";
  const std::string model = testing::source_path(kTiny);
  engine::GenerationRequest request;
  request.height = 32, request.width = 48;
  request.num_inference_steps = 2;
  request.max_sequence_length = 8;
  request.seed = 7;
  request.prompt = {"a red circle", "a blue square"};
  engine::EngineOptions options;
  options.model = model;
  const std::string maps = testing::source_path("tests/fixtures/placement/maps/");
  if (world.size() == 2) {
    options.text_encoder_device_map = "auto";
    options.max_memory = "0=400000,1=400000";
  } else {
    options.text_encoder_device_map = maps + "tiny_clip_three_stages.json";
    options.text_encoder_2_device_map = maps + "tiny_t5_three_stages.json";
    options.transformer_device_map = maps + "tiny_three_stages.json";
  }
  engine::Engine engine(world, options);
  EXPECT_EQ(engine.mesh().size(parallel::MeshDim::Stage), world.size());
  engine.mesh().reset_comm_stats();
  const auto result = engine.run(request);
  int64_t stage_bytes = engine.mesh().comm(parallel::MeshDim::Stage).stats().bytes_sent;
  world.allreduce(&stage_bytes, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
  EXPECT_GE(stage_bytes, 2 * 77 * 32 * 4);  // CLIP's hidden states crossed at least once
  if (world.rank() != 0) return;
  EXPECT_NE(engine.placement_report().find("\"text_encoder\":{\"embeddings\":"), std::string::npos)
      << engine.placement_report();
  testing::expect_same_images(result, testing::run_on_one_process(model, request), 2);
}

}  // namespace
}  // namespace paradiff
