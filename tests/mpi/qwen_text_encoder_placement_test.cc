// --text-encoder-device-map on Qwen-Image: accelerate's map over the whole
// Qwen2_5_VLForConditionalGeneration executed across ranks. Each rank binds only the language
// model's units its map gives it (the vision tower and lm_head are never read, wherever the map
// puts them), the owners hand each prompt's hidden states on, and the last hidden state of a
// masked batch equals one process's bit for bit (fp32 and bf16); through the engine, the latents
// and images of a true-CFG run do too.
#include <gtest/gtest.h>

#include "mpi_world.h"
#include "paradiff/core/memory.h"
#include "paradiff/engine/engine.h"
#include "paradiff/models/qwen2_5_vl/qwen2_5_vl_module_tree.h"
#include "paradiff/models/qwen2_5_vl/qwen2_5_vl_text_model.h"
#include "paradiff/parallel/placement/model_device_map.h"
#include "placement_checks.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

using models::qwen2_5_vl::Qwen2_5_VLTextModel;

const std::string kTiny = "tests/fixtures/qwen_image_pipeline/tiny";

// At 2 ranks accelerate's "sequential" (golden: the vision tower on rank 0, the language model on
// rank 1, lm_head on "disk") and a map that goes back and forth; at 3 ranks accelerate's
// "balanced_low_0" (golden: the embedding and layer 0 on rank 1, layer 1 and the norm on rank 2).
std::vector<std::pair<std::string, parallel::DeviceMap>> maps(const parallel::ModuleTree& tree,
                                                              int ranks) {
  using testing::fp32_map;
  if (ranks == 2)
    return {fp32_map(tree, "sequential", 2, "0=200000,1=200000"),
            fp32_map(tree, "tiny_qwen_text_encoder_back_and_forth.json", 2)};
  return {fp32_map(tree, "balanced_low_0", 3, "0=281264,1=281264,2=281264")};
}

// This rank's bytes of the language model's parameters under `map` (fp32): what it must bind;
// with `on_disk`, the bytes on "disk" instead.
int64_t text_model_share(const parallel::ModuleTree& tree, const parallel::DeviceMap& map,
                         bool on_disk = false) {
  const auto sizes = parallel::compute_module_sizes(tree, SafetensorsDType::F32);
  int64_t mine = 0;
  for (const std::string& name : tree.state_dict_names()) {
    if (name.rfind("model.language_model.", 0) != 0) continue;
    size_t best = 0;
    bool found = false, here = false;
    for (const auto& [key, device] : map)
      if (key.empty() || name == key || name.rfind(key + ".", 0) == 0)
        if (!found || key.size() >= best) {
          best = key.size(), found = true;
          here = on_disk ? device.is_disk()
                         : device.is_rank() && device.rank_index() == testing::world().rank();
        }
    if (here) mine += sizes[name];
  }
  return mine;
}

TEST(QwenTextEncoderPlacement, RunsSplitAndBitIdentical) {
  auto& world = testing::world();
  if (world.size() != 2 && world.size() != 3) GTEST_SKIP() << "runs at 2 and 3 ranks";
  const std::string folder = testing::source_path(kTiny + "/text_encoder");
  const parallel::ModuleTree tree = models::qwen2_5_vl::qwen2_5_vl_module_tree(folder);
  // Two prompts of 6 slots: one left-padded (4 valid tokens), one right-padded (3 valid).
  Tensor ids = Tensor::empty({2, 6}, DType::I64), mask = Tensor::empty({2, 6}, DType::I64);
  const int64_t id_values[12] = {700, 700, 11, 57, 310, 699, 42, 8, 615, 700, 700, 700};
  const int64_t mask_values[12] = {0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0};
  for (int i = 0; i < 12; ++i) {
    ids.data<int64_t>()[i] = id_values[i];
    mask.data<int64_t>()[i] = mask_values[i];
  }
  for (const auto& [map_name, map] : maps(tree, world.size())) {
    SCOPED_TRACE(map_name);
    const int64_t mine = text_model_share(tree, map);
    for (DType compute : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(dtype_name(compute));
      Tensor want;
      int64_t full_parameters = 0;
      {
        const auto single = Qwen2_5_VLTextModel::from_pretrained(folder, compute);
        full_parameters = single.parameter_bytes();
        want = single.forward(ids, mask);
      }
      const auto placed = Qwen2_5_VLTextModel::from_pretrained_placed(folder, compute, map, world);
      EXPECT_TRUE(placed.is_placed());
      int64_t bound = placed.parameter_bytes();
      // Its share of the map (fp32; in the back-and-forth map each rank holds part of the
      // language model, in the goldens one rank may hold all of it), and the ranks together bind
      // the language model once.
      if (compute == DType::F32) {
        EXPECT_EQ(bound, mine) << "rank " << world.rank();
      }
      world.allreduce(&bound, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
      EXPECT_EQ(bound, full_parameters);
      world.reset_stats();
      const Tensor got = placed.forward(ids, mask);
      testing::expect_bit_identical(got, want, "placed last hidden state");
      const int64_t sent = testing::bytes_sent_by_all(world);
      EXPECT_GE(sent, int64_t{3} * 32 * 4);  // at least one element's hand-off
    }
  }
}

// "disk" units (the embedding and layer 1; then layer 0 and the norm) run on rank 0, streamed
// from the folder's model.safetensors for each element: the masked batch's last hidden state
// equals one process's bit for bit, nobody binds the disk share, and a forward leaves nothing
// resident but its output.
TEST(QwenTextEncoderPlacement, DiskUnitsAreStreamedAndBitIdentical) {
  auto& world = testing::world();
  if (world.size() != 2) GTEST_SKIP() << "runs at 2 ranks";
  const std::string folder = testing::source_path(kTiny + "/text_encoder");
  const parallel::ModuleTree tree = models::qwen2_5_vl::qwen2_5_vl_module_tree(folder);
  using parallel::DeviceKey;
  const std::string lm = "model.language_model.";
  const std::vector<std::pair<std::string, parallel::DeviceMap>> maps{
      {"the embedding and layer 1 on disk",
       {{"model.visual", DeviceKey::rank(0)},
        {lm + "embed_tokens", DeviceKey::disk()},
        {lm + "layers.0", DeviceKey::rank(1)},
        {lm + "layers.1", DeviceKey::disk()},
        {lm + "norm", DeviceKey::rank(1)},
        {lm + "rotary_emb", DeviceKey::rank(1)},
        {"lm_head", DeviceKey::rank(1)}}},
      {"layer 0 and the norm on disk",
       {{"model.visual", DeviceKey::rank(0)},
        {lm + "embed_tokens", DeviceKey::rank(1)},
        {lm + "layers.0", DeviceKey::disk()},
        {lm + "layers.1", DeviceKey::rank(1)},
        {lm + "norm", DeviceKey::disk()},
        {lm + "rotary_emb", DeviceKey::rank(0)},
        {"lm_head", DeviceKey::rank(1)}}}};
  Tensor ids = Tensor::empty({2, 6}, DType::I64), mask = Tensor::empty({2, 6}, DType::I64);
  const int64_t id_values[12] = {700, 700, 11, 57, 310, 699, 42, 8, 615, 700, 700, 700};
  const int64_t mask_values[12] = {0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0};
  for (int i = 0; i < 12; ++i) {
    ids.data<int64_t>()[i] = id_values[i];
    mask.data<int64_t>()[i] = mask_values[i];
  }
  for (const auto& [map_name, map] : maps) {
    SCOPED_TRACE(map_name);
    const int64_t mine = text_model_share(tree, map);
    const int64_t on_disk = text_model_share(tree, map, /*on_disk=*/true);
    ASSERT_GT(on_disk, 0);
    for (DType compute : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(dtype_name(compute));
      Tensor want;
      int64_t full_parameters = 0;
      {
        const auto single = Qwen2_5_VLTextModel::from_pretrained(folder, compute);
        full_parameters = single.parameter_bytes();
        want = single.forward(ids, mask);
      }
      const auto placed = Qwen2_5_VLTextModel::from_pretrained_placed(folder, compute, map, world);
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
        const Tensor got = placed.forward(ids, mask);
        testing::expect_bit_identical(got, want, "placed last hidden state with disk units");
        EXPECT_EQ(current_bytes() - before_forward, got.nbytes())
            << "streamed units must not stay resident after the forward";
      }
    }
  }
}

// Through the engine: the Qwen-Image pipeline with its text encoder placed (at 3 ranks with the
// transformer placed too) gives one process's latents and images bit for bit, true CFG on.
TEST(QwenTextEncoderPlacement, PipelineEqualsOneProcess) {
  auto& world = testing::world();
  if (world.size() != 2 && world.size() != 3) GTEST_SKIP() << "runs at 2 and 3 ranks";
  const std::string model = testing::source_path(kTiny);
  engine::GenerationRequest request;
  request.prompt = {"a small blue house by a lake", "a red kite"};
  request.negative_prompt = {"blurry, low quality", ""};
  request.true_cfg_scale = 4.0f;
  request.height = 32, request.width = 24;
  request.num_inference_steps = 2;
  request.seed = 42;
  engine::EngineOptions options;
  options.model = model;
  if (world.size() == 2) {
    options.text_encoder_device_map = testing::source_path(
        "tests/fixtures/placement/maps/tiny_qwen_text_encoder_back_and_forth.json");
  } else {
    options.text_encoder_device_map = "balanced_low_0";
    options.transformer_device_map = "balanced";
    options.max_memory = "0=600000,1=600000,2=600000";
  }
  engine::Engine engine(world, options);
  EXPECT_EQ(engine.mesh().size(parallel::MeshDim::Stage), world.size());
  engine.mesh().reset_comm_stats();
  const auto result = engine.run(request);
  int64_t stage_bytes = engine.mesh().comm(parallel::MeshDim::Stage).stats().bytes_sent;
  world.allreduce(&stage_bytes, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
  EXPECT_GT(stage_bytes, 0);
  if (world.rank() != 0) return;
  EXPECT_NE(engine.placement_report().find("\"text_encoder\":{\"model.visual\":"),
            std::string::npos)
      << engine.placement_report();
  testing::expect_same_images(result, testing::run_on_one_process(model, request), 2);
}

}  // namespace
}  // namespace paradiff
