// Model-level placement executed across ranks: each rank binds only the transformer units its
// map gives it, the stage owners hand the hidden states on, and the result equals the
// single-process one bit for bit (same thread count per rank); the resident weight bytes per
// rank equal the map's share.
#include <gtest/gtest.h>

#include "mpi_world.h"
#include "paradiff/core/memory.h"
#include "paradiff/engine/engine.h"
#include "paradiff/models/flux/flux_module_tree.h"
#include "paradiff/models/flux/flux_transformer.h"
#include "paradiff/parallel/placement/model_device_map.h"
#include "placement_checks.h"
#include "testing/flux_inputs.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

using models::flux::FluxTransformer2DModel;
using models::flux::FluxTransformerConfig;
using models::flux::FluxTransformerInputs;

const std::string kTiny = "tests/fixtures/flux_pipeline/tiny";

using testing::expect_bit_identical;

// A two-step 48x32 request on the tiny pipeline.
engine::GenerationRequest tiny_request(std::vector<std::string> prompts) {
  engine::GenerationRequest request;
  request.height = 32, request.width = 48;
  request.num_inference_steps = 2;
  request.max_sequence_length = 8;
  request.seed = 3;
  request.prompt = std::move(prompts);
  return request;
}

// The tiny pipeline's transformer (1 double, 2 single blocks): at 3 ranks an explicit map with
// one block per rank (the head on the last rank), at 2 ranks accelerate's "auto" on a budget
// that needs both ranks; and at each, a map that streams blocks and the head from "disk" (run by
// rank 0, after the other stages) and one that streams the embedders (time_text_embed and
// x_embedder at 3 ranks, context_embedder held beside them; all three and the head at 2).
std::vector<std::pair<std::string, parallel::DeviceMap>> tiny_maps(const parallel::ModuleTree& tree,
                                                                   int ranks) {
  auto file = [](const std::string& name) {
    return std::make_pair(name, parallel::read_device_map_file(
                                    testing::source_path("tests/fixtures/placement/maps/" + name)));
  };
  if (ranks == 3)
    return {file("tiny_three_stages.json"), file("tiny_three_stages_disk.json"),
            file("tiny_three_stages_embedders_disk.json")};
  parallel::SizeOptions sizes;
  sizes.dtype = SafetensorsDType::F32;
  return {{"auto", parallel::place_model(
                       tree, "auto", parallel::MaxMemory::parse("0=250000,1=400000", 2), 2, sizes)
                       .device_map},
          file("tiny_disk.json"),
          file("tiny_embedders_disk.json")};
}

TEST(Placement, TinyTransformerRunsSplitAndBitIdentical) {
  auto& world = testing::world();
  if (world.size() != 2 && world.size() != 3) GTEST_SKIP() << "runs at 2 and 3 ranks";
  const std::string folder = testing::source_path(kTiny + "/transformer");
  const parallel::ModuleTree tree = models::flux::flux_transformer_module_tree(folder);
  auto rng = testing::make_rng();
  const auto config = FluxTransformerConfig::load(folder + "/config.json");
  const auto in = testing::random_flux_inputs(config, 2, 15, 6, 5, rng);
  for (const auto& [map_name, map] : tiny_maps(tree, world.size())) {
    SCOPED_TRACE(map_name);
    const auto [mine, on_disk] = testing::map_share(tree, map);
    for (DType compute : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(dtype_name(compute));
      Tensor want;
      int64_t full_resident = 0, full_parameters = 0;
      {
        const int64_t before = current_bytes();
        const auto single = FluxTransformer2DModel::from_pretrained(folder, compute);
        full_resident = current_bytes() - before;
        full_parameters = single.parameter_bytes();
        want = single.forward(in);
      }
      const int64_t before = current_bytes();
      const auto placed =
          FluxTransformer2DModel::from_pretrained_placed(folder, compute, map, world);
      const testing::PlacedShare share{current_bytes() - before, full_resident,
                                       placed.parameter_bytes(), full_parameters};
      testing::expect_weights_split(share, mine, on_disk, compute == DType::F32);
      if (compute == DType::F32) {
        EXPECT_EQ(full_parameters,
                  parallel::compute_module_sizes(tree, SafetensorsDType::F32).total());
      }
      world.reset_stats();
      const int64_t before_forward = current_bytes();
      const Tensor got = placed.forward(in);
      expect_bit_identical(got, want, "placed forward");
      EXPECT_EQ(current_bytes() - before_forward, got.nbytes())
          << "streamed units must not stay resident after the forward";
      // Hidden states crossed between the stage owners: (B, S, C) F32 per boundary.
      int64_t sent = world.stats().bytes_sent;
      world.allreduce(&sent, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
      EXPECT_GE(sent, int64_t{2} * (15 + 6) * config.inner_dim() * 4 * (world.size() - 1));
    }
  }
}

TEST(Placement, GenerateWithTransformerDeviceMapIsBitIdentical) {
  auto& world = testing::world();
  if (world.size() != 2 && world.size() != 3) GTEST_SKIP() << "runs at 2 and 3 ranks";
  const std::string model = testing::source_path(kTiny);
  const engine::GenerationRequest request = tiny_request({"a red circle", "a blue square"});
  engine::EngineOptions options;
  options.model = model;
  options.transformer_device_map =
      world.size() == 3
          ? testing::source_path("tests/fixtures/placement/maps/tiny_three_stages.json")
          : "auto";
  options.max_memory = world.size() == 3 ? "" : "0=250000,1=400000";
  engine::Engine engine(world, options);
  EXPECT_EQ(engine.replicas(), 1);
  EXPECT_EQ(engine.mesh().size(parallel::MeshDim::Stage), world.size());
  engine.mesh().reset_comm_stats();
  const auto result = engine.run(request);
  // The stages handed hidden states on: bytes crossed the stage communicator.
  int64_t stage_bytes = engine.mesh().comm(parallel::MeshDim::Stage).stats().bytes_sent;
  world.allreduce(&stage_bytes, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
  EXPECT_GT(stage_bytes, 0);
  if (world.rank() != 0) {
    EXPECT_TRUE(result.images.empty());
    return;
  }
  EXPECT_NE(engine.placement_report().find("\"transformer\""), std::string::npos);
  // Every rank of this job runs on this machine: one host holds the whole transformer.
  EXPECT_NE(engine.placement_report().find("\"bytes_per_host\":{\""), std::string::npos)
      << engine.placement_report();
  testing::expect_same_images(result, testing::run_on_one_process(model, request), 2);
}

}  // namespace
}  // namespace paradiff

namespace paradiff {
namespace {

// Placement composed with context parallelism: 2 stages x Ulysses 2 on 4 ranks. Each stage is a
// Ulysses group; each rank hands its token share to its peer in the next stage. The text
// encoders are placed by their own maps too (T5 with block 0 on "disk", CLIP back and forth):
// each stage communicator (one per Ulysses index) runs them across its two ranks.
TEST(Placement, TwoStagesOfUlysses2MatchOneProcess) {
  auto& world = testing::world();
  if (world.size() != 4) GTEST_SKIP() << "runs at 4 ranks";
  const std::string model = testing::source_path(kTiny);
  const engine::GenerationRequest request = tiny_request({"a red circle"});
  engine::EngineOptions options;
  options.model = model;
  parallel::ContextParallelConfig ulysses;
  ulysses.ulysses_degree = 2;
  options.parallel.context_parallel_config = ulysses;
  options.transformer_device_map = "auto";
  options.max_memory = "0=250000,1=400000";
  const std::string maps = testing::source_path("tests/fixtures/placement/maps/");
  options.text_encoder_2_device_map = maps + "tiny_t5_disk_back_and_forth.json";
  options.text_encoder_device_map = maps + "tiny_clip_back_and_forth.json";
  engine::Engine engine(world, options);
  EXPECT_EQ(engine.replicas(), 1);
  EXPECT_EQ(engine.mesh().size(parallel::MeshDim::Stage), 2);
  EXPECT_EQ(engine.mesh().context_parallel().size(), 2);
  EXPECT_NE(engine.placement_report().find("\"encoder.block.0\":\"disk\""), std::string::npos)
      << engine.placement_report();
  engine.mesh().reset_comm_stats();
  const auto result = engine.run(request);
  int64_t bytes[2] = {engine.mesh().comm(parallel::MeshDim::Stage).stats().bytes_sent,
                      engine.mesh().context_parallel().stats().bytes_sent};
  world.allreduce(bytes, 2, dist::ReduceType::I64, dist::ReduceOp::Sum);
  EXPECT_GT(bytes[0], 0) << "no hidden states crossed between stages";
  EXPECT_GT(bytes[1], 0) << "no tokens moved inside the Ulysses groups";
  if (world.rank() != 0) return;
  const auto reference = testing::run_on_one_process(model, request);
  ASSERT_EQ(result.images.size(), 1u);
  const double err = testing::relative_error(result.images[0].latents, reference.images[0].latents);
  std::printf("  2 stages x ulysses 2: latents relative error %.3g\n", err);
  EXPECT_LE(err, 1e-5);  // the context-parallel tests' tolerance
}

}  // namespace
}  // namespace paradiff

namespace paradiff {
namespace {

// Pipeline-level device_map="balanced" at 2 ranks: diffusers' deal of the tiny pipeline
// ({vae: 0, text_encoder: 1, transformer: 1, text_encoder_2: 0}); T5 encodes on rank 0, CLIP on
// rank 1, the transformer runs on rank 1 only, the VAE decodes on rank 0.
TEST(Placement, PipelineBalancedIsBitIdentical) {
  auto& world = testing::world();
  if (world.size() != 2) GTEST_SKIP() << "runs at 2 ranks";
  const std::string model = testing::source_path(kTiny);
  const engine::GenerationRequest request = tiny_request({"a red circle", "a blue square"});
  engine::EngineOptions options;
  options.model = model;
  options.device_map = "balanced";
  options.max_memory = "0=1200000,1=1200000";
  engine::Engine engine(world, options);
  EXPECT_EQ(engine.replicas(), 1);
  engine.mesh().reset_comm_stats();
  const auto result = engine.run(request);
  // Every component was loaded on its owner only: each rank holds what the deal gave it (the
  // pipeline keeps its components loaded by default).
  const auto& cache = engine.pipeline().components();
  const bool root = world.rank() == 0;
  EXPECT_EQ(cache.load_count("text_encoder_2"), root ? 1 : 0);
  EXPECT_EQ(cache.load_count("vae"), root ? 1 : 0);
  EXPECT_EQ(cache.load_count("text_encoder"), root ? 0 : 1);
  int64_t sent = engine.mesh().comm(parallel::MeshDim::Stage).stats().bytes_sent;
  world.allreduce(&sent, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
  EXPECT_GT(sent, 0);
  if (!root) return;
  EXPECT_NE(
      engine.placement_report().find(
          "\"pipeline\":{\"vae\":0,\"text_encoder\":1,\"transformer\":1,\"text_encoder_2\":0}"),
      std::string::npos)
      << engine.placement_report();
  testing::expect_same_images(result, testing::run_on_one_process(model, request), 2);
}

int64_t tiny_transformer_bytes() {
  return parallel::compute_module_sizes(models::flux::flux_transformer_module_tree(
                                            testing::source_path(kTiny) + "/transformer"),
                                        SafetensorsDType::F32)
      .total();
}

// The same deal over 2 stages that are each a Ulysses group (4 ranks: stage x ulysses): T5 and
// the VAE on stage 0's first rank, CLIP on stage 1's, the transformer on both ranks of stage 1,
// which split its tokens. Equal to one process within the context-parallel tolerance.
TEST(Placement, PipelineBalancedWithUlysses2MatchesOneProcess) {
  auto& world = testing::world();
  if (world.size() != 4) GTEST_SKIP() << "runs at 4 ranks";
  const std::string model = testing::source_path(kTiny);
  const engine::GenerationRequest request = tiny_request({"a red circle"});
  engine::EngineOptions options;
  options.model = model;
  parallel::ContextParallelConfig ulysses;
  ulysses.ulysses_degree = 2;
  options.parallel.context_parallel_config = ulysses;
  options.device_map = "balanced";
  options.max_memory = "0=1200000,1=1200000";
  engine::Engine engine(world, options);
  EXPECT_EQ(engine.replicas(), 1);
  EXPECT_EQ(engine.mesh().size(parallel::MeshDim::Stage), 2);
  EXPECT_EQ(engine.mesh().context_parallel().size(), 2);
  engine.mesh().reset_comm_stats();
  const auto result = engine.run(request);
  testing::expect_components_on_owners<FluxTransformer2DModel>(
      engine,
      {{"text_encoder_2", {0}}, {"vae", {0}}, {"text_encoder", {2}}, {"transformer", {2, 3}}},
      tiny_transformer_bytes());
  int64_t bytes[3] = {engine.mesh().comm(parallel::MeshDim::Stage).stats().bytes_sent,
                      engine.mesh().context_parallel().stats().bytes_sent,
                      engine.mesh().replica().stats().bytes_sent};
  world.allreduce(bytes, 3, dist::ReduceType::I64, dist::ReduceOp::Sum);
  EXPECT_GT(bytes[0], 0) << "the predictions did not cross between stages";
  EXPECT_GT(bytes[1], 0) << "no tokens moved inside the Ulysses groups";
  EXPECT_GT(bytes[2], 0) << "no embeddings were sent";
  if (world.rank() != 0) return;
  EXPECT_NE(
      engine.placement_report().find(
          "\"pipeline\":{\"vae\":0,\"text_encoder\":1,\"transformer\":1,\"text_encoder_2\":0}"),
      std::string::npos)
      << engine.placement_report();
  const auto reference = testing::run_on_one_process(model, request);
  ASSERT_EQ(result.images.size(), 1u);
  const double err = testing::relative_error(result.images[0].latents, reference.images[0].latents);
  std::printf("  balanced deal over 2 stages x ulysses 2: latents relative error %.3g\n", err);
  EXPECT_LE(err, 1e-5);  // the context-parallel tests' tolerance
}

// A map inside each data-parallel group: 4 ranks as 2 replicas of 2 stages, each replica dealt
// the 2-rank map; 3 prompts split between the replicas, bit-identical to one process.
TEST(Placement, PipelineBalancedInsideEachDataParallelGroup) {
  auto& world = testing::world();
  if (world.size() != 4) GTEST_SKIP() << "runs at 4 ranks";
  const std::string model = testing::source_path(kTiny);
  const engine::GenerationRequest request =
      tiny_request({"a red circle", "a blue square", "a green triangle"});
  engine::EngineOptions options;
  options.model = model;
  options.parallel.stage_degree = 2;
  options.device_map = "balanced";
  options.max_memory = "0=1200000,1=1200000";
  engine::Engine engine(world, options);
  EXPECT_EQ(engine.replicas(), 2);
  EXPECT_EQ(engine.mesh().size(parallel::MeshDim::Stage), 2);
  engine.mesh().reset_comm_stats();
  const auto result = engine.run(request);
  testing::expect_components_on_owners<FluxTransformer2DModel>(
      engine, {{"text_encoder_2", {0}}, {"vae", {0}}, {"text_encoder", {1}}, {"transformer", {1}}},
      tiny_transformer_bytes());
  int64_t bytes[2] = {engine.mesh().comm(parallel::MeshDim::Stage).stats().bytes_sent,
                      engine.mesh().comm(parallel::MeshDim::Data).stats().bytes_sent};
  world.allreduce(bytes, 2, dist::ReduceType::I64, dist::ReduceOp::Sum);
  EXPECT_GT(bytes[0], 0) << "nothing crossed between stages";
  EXPECT_GT(bytes[1], 0) << "the second replica returned no images";
  EXPECT_EQ(result.stats.prompts_here, engine.mesh().index(parallel::MeshDim::Data) == 0 ? 2 : 1);
  if (world.rank() != 0) return;
  testing::expect_same_images(result, testing::run_on_one_process(model, request), 3);
}

}  // namespace
}  // namespace paradiff
