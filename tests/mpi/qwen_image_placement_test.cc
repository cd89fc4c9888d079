// Model-level placement of QwenImageTransformer2DModel executed across ranks: each rank binds
// only the units its map gives it, the stage owners hand each batch element's hidden states on
// (masked text dropped first, so elements differ in length), "disk" units stream from the
// checkpoint, and the result equals the single-process one bit for bit (same thread count per
// rank). Through the engine: the Qwen-Image pipeline with true CFG, placed alone at 2 and 3
// ranks, and placed stages inside cfg-parallel groups at 4; and the pipeline-level deal
// (device_map="balanced") alone and with cfg parallelism.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

#include "mpi_world.h"
#include "paradiff/core/memory.h"
#include "paradiff/engine/engine.h"
#include "paradiff/models/qwen_image/qwen_image_module_tree.h"
#include "paradiff/models/qwen_image/qwen_image_transformer.h"
#include "paradiff/parallel/placement/model_device_map.h"
#include "placement_checks.h"
#include "testing/temp_dir.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

using models::qwen_image::QwenImageTransformer2DModel;
using models::qwen_image::QwenImageTransformerConfig;
using models::qwen_image::QwenImageTransformerInputs;

void expect_refused(const std::string& folder, const nlohmann::ordered_json& map,
                    const std::string& needle) {
  try {
    QwenImageTransformer2DModel::from_pretrained_placed(
        folder, DType::F32, parallel::device_map_from_json(map), testing::world());
    ADD_FAILURE() << "the map " << map.dump() << " was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

using testing::expect_bit_identical;

// Where a map puts units on "disk".
enum class Disk { None, BlocksAndHead, Embedders };

// Units dealt round the ranks: the timestep embedding on the last rank, the embedders on rank 0,
// block i on rank (i + 1) % world, the head on the last rank. With Disk::BlocksAndHead the even
// blocks and the head are streamed instead (run by rank 0) and the odd blocks go to rank 1, so
// that every rank still holds something; with Disk::Embedders the timestep embedding, txt_norm
// and img_in are streamed (txt_in, which starts the joint states with them, stays on rank 0).
parallel::DeviceMap round_robin_map(const QwenImageTransformerConfig& config, int world,
                                    Disk disk) {
  const nlohmann::ordered_json on_disk("disk");
  nlohmann::ordered_json map;
  map["time_text_embed"] = disk == Disk::Embedders ? on_disk : nlohmann::ordered_json(world - 1);
  for (const char* unit : {"txt_norm", "img_in", "txt_in"}) map[unit] = 0;
  if (disk == Disk::Embedders) map["txt_norm"] = map["img_in"] = on_disk;
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string name = str_cat("transformer_blocks.", i);
    if (disk == Disk::BlocksAndHead)
      map[name] = i % 2 == 0 ? on_disk : nlohmann::ordered_json(1);
    else
      map[name] = static_cast<int>((i + 1) % world);
  }
  for (const char* unit : {"norm_out", "proj_out"}) {
    if (disk == Disk::BlocksAndHead)
      map[unit] = on_disk;
    else
      map[unit] = world - 1;
  }
  return parallel::device_map_from_json(map);
}

TEST(QwenImagePlacement, TransformerRunsSplitAndBitIdentical) {
  auto& world = testing::world();
  if (world.size() != 2 && world.size() != 3) GTEST_SKIP() << "runs at 2 and 3 ranks";
  // The pipeline's tiny transformer (2 blocks) on random inputs whose two elements keep 5 and 2
  // of their 7 text tokens.
  const std::string folder =
      testing::source_path("tests/fixtures/qwen_image_pipeline/tiny/transformer");
  const auto config = QwenImageTransformerConfig::load(folder + "/config.json");
  const parallel::ModuleTree tree = models::qwen_image::qwen_image_transformer_module_tree(folder);
  auto rng = testing::make_rng();
  QwenImageTransformerInputs in;
  in.hidden_states = testing::random_normal({2, 12, config.in_channels}, DType::F32, rng);
  in.encoder_hidden_states =
      testing::random_normal({2, 7, config.joint_attention_dim}, DType::F32, rng);
  in.timestep = testing::random_uniform({2}, DType::F32, rng, 0.0f, 1.0f);
  in.img_shapes.assign(2, {{1, 3, 4}});
  in.encoder_hidden_states_mask = Tensor::zeros({2, 7}, DType::F32);
  for (int64_t j : {0, 1, 2, 3, 4, 7 + 2, 7 + 5})
    in.encoder_hidden_states_mask.data<float>()[j] = 1;

  for (Disk disk : {Disk::None, Disk::BlocksAndHead, Disk::Embedders}) {
    SCOPED_TRACE(disk == Disk::None            ? "ranks only"
                 : disk == Disk::BlocksAndHead ? "blocks and head on disk"
                                               : "embedders on disk");
    const parallel::DeviceMap map = round_robin_map(config, world.size(), disk);
    const auto [mine, on_disk] = testing::map_share(tree, map);
    for (DType compute : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(dtype_name(compute));
      Tensor want;
      int64_t full_resident = 0, full_parameters = 0;
      {
        const int64_t before = current_bytes();
        const auto single = QwenImageTransformer2DModel::from_pretrained(folder, compute);
        full_resident = current_bytes() - before;
        full_parameters = single.parameter_bytes();
        want = single.forward(in);
      }
      const int64_t before = current_bytes();
      const auto placed =
          QwenImageTransformer2DModel::from_pretrained_placed(folder, compute, map, world);
      EXPECT_TRUE(placed.is_placed());
      const testing::PlacedShare share{current_bytes() - before, full_resident,
                                       placed.parameter_bytes(), full_parameters};
      testing::expect_weights_split(share, mine, on_disk, compute == DType::F32);
      // The module tree the planner sizes the map with totals the model's parameters.
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
      // Hidden states crossed between the owners: at least (text + image rows) x C x 4 bytes per
      // element and boundary of the chain.
      int64_t sent = world.stats().bytes_sent;
      world.allreduce(&sent, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
      EXPECT_GE(sent, int64_t{(5 + 12) + (2 + 12)} * config.inner_dim() * 4);
    }
  }
}

TEST(QwenImagePlacement, ARefusedMapNamesTheUnitsAndRanks) {
  auto& world = testing::world();
  if (world.size() != 2) GTEST_SKIP() << "runs at 2 ranks";
  const std::string folder =
      testing::source_path("tests/fixtures/qwen_image_pipeline/tiny/transformer");
  expect_refused(folder, {{"", 0}, {"img_in", 1}},
                 "txt_norm (rank 0) and img_in (rank 1) must be on one rank");
  expect_refused(folder, {{"", 0}, {"proj_out", 1}},
                 "norm_out (rank 0) and proj_out (rank 1) must be on one rank");
  // A "disk" unit runs on rank 0: txt_in on disk with img_in on rank 1 is a split too.
  expect_refused(folder, {{"", 0}, {"txt_in", "disk"}, {"txt_norm", 1}, {"img_in", 1}},
                 "txt_norm (rank 1) and txt_in (\"disk\", run by rank 0) must be on one rank");
}

engine::GenerationRequest qwen_request() {
  engine::GenerationRequest r;
  r.prompt = {"a small blue house by a lake", "a red kite"};
  r.negative_prompt = {"blurry, low quality", ""};
  r.true_cfg_scale = 4.0f;
  r.height = 32, r.width = 24;
  r.num_inference_steps = 2;
  r.seed = 42;
  return r;
}

// Through the engine: --transformer-device-map on the Qwen-Image pipeline, alone (2 and 3
// stages) or as 2 stages inside each of 2 cfg-parallel groups (4 ranks), where the text encoder
// is placed by its own map too (each cfg group's stage communicator runs it across its ranks,
// layer 0 streamed from "disk").
TEST(QwenImagePlacement, PipelineWithTransformerDeviceMapEqualsOneProcess) {
  auto& world = testing::world();
  const std::string model = testing::source_path("tests/fixtures/qwen_image_pipeline/tiny");
  engine::EngineOptions options;
  options.model = model;
  const int stages = world.size() == 4 ? 2 : world.size();
  if (world.size() == 4) options.parallel.cfg_degree = 2;
  const auto config = QwenImageTransformerConfig::load(model + "/transformer/config.json");
  const testing::TempDir dir;
  const std::string map_path = dir.file("map.json");
  {
    std::ofstream out(map_path);
    out << parallel::device_map_to_json(round_robin_map(config, stages, Disk::None)).dump();
  }
  options.transformer_device_map = map_path;
  if (world.size() == 4)
    options.text_encoder_device_map =
        testing::source_path("tests/fixtures/placement/maps/tiny_qwen_text_encoder_disk.json");
  engine::Engine engine(world, options);
  EXPECT_EQ(engine.replicas(), 1);
  EXPECT_EQ(engine.mesh().size(parallel::MeshDim::Stage), stages);
  if (world.size() == 4 && world.rank() == 0) {
    EXPECT_NE(engine.placement_report().find("\"model.language_model.layers.0\":\"disk\""),
              std::string::npos)
        << engine.placement_report();
  }
  engine.mesh().reset_comm_stats();
  const auto request = qwen_request();
  const auto result = engine.run(request);
  int64_t bytes[2] = {engine.mesh().comm(parallel::MeshDim::Stage).stats().bytes_sent,
                      engine.mesh().comm(parallel::MeshDim::Cfg).stats().bytes_sent};
  world.allreduce(bytes, 2, dist::ReduceType::I64, dist::ReduceOp::Sum);
  EXPECT_GT(bytes[0], 0) << "no hidden states crossed between stages";
  if (world.size() == 4) {
    EXPECT_GT(bytes[1], 0) << "the cfg groups exchanged nothing";
  }
  if (world.rank() != 0) return;
  testing::expect_same_images(result, testing::run_on_one_process(model, request), 2);
}

// Pipeline-level device_map="balanced" (diffusers' deal, golden in pipeline_maps.json
// "qwen_tiny/*"): at 2 ranks {vae: 0, transformer: 1, text_encoder: 1}; at 3 ranks each
// component on a rank of its own; at 4 ranks the 2-rank deal over 2 stages, each a cfg-parallel
// group (the encoder and the VAE on their stage's first rank, the transformer on both ranks of
// stage 1). The encoder's owner encodes prompts and negative prompts (true CFG) and sends the
// embeddings and masks; latents and images equal one process's bit for bit.
TEST(QwenImagePlacement, PipelineBalancedIsBitIdentical) {
  auto& world = testing::world();
  const std::string model = testing::source_path("tests/fixtures/qwen_image_pipeline/tiny");
  engine::EngineOptions options;
  options.model = model;
  options.device_map = "balanced";
  std::string deal;
  std::map<std::string, std::set<int>> owners;  // replica ranks
  if (world.size() == 3) {
    options.max_memory = "0=1100000,1=400000,2=400000";
    deal = R"("pipeline":{"vae":0,"transformer":1,"text_encoder":2})";
    owners = {{"vae", {0}}, {"transformer", {1}}, {"text_encoder", {2}}, {"tokenizer", {2}}};
  } else {
    options.max_memory = "0=1100000,1=1100000";
    deal = R"("pipeline":{"vae":0,"transformer":1,"text_encoder":1})";
    owners = {{"vae", {0}}, {"transformer", {1}}, {"text_encoder", {1}}, {"tokenizer", {1}}};
    if (world.size() == 4) {
      options.parallel.cfg_degree = 2;
      owners = {{"vae", {0}}, {"transformer", {2, 3}}, {"text_encoder", {2}}, {"tokenizer", {2}}};
    }
  }
  engine::Engine engine(world, options);
  EXPECT_EQ(engine.replicas(), 1);
  EXPECT_EQ(engine.mesh().size(parallel::MeshDim::Stage), world.size() == 4 ? 2 : world.size());
  engine.mesh().reset_comm_stats();
  const auto request = qwen_request();
  const auto result = engine.run(request);
  const std::string folder = model + "/transformer";
  testing::expect_components_on_owners<QwenImageTransformer2DModel>(
      engine, owners,
      parallel::compute_module_sizes(models::qwen_image::qwen_image_transformer_module_tree(folder),
                                     SafetensorsDType::F32)
          .total());
  // The embeddings crossed the replica, the predictions the stages, and at 4 ranks the two
  // branches the cfg groups.
  int64_t bytes[3] = {engine.mesh().replica().stats().bytes_sent,
                      engine.mesh().comm(parallel::MeshDim::Stage).stats().bytes_sent,
                      engine.mesh().comm(parallel::MeshDim::Cfg).stats().bytes_sent};
  world.allreduce(bytes, 3, dist::ReduceType::I64, dist::ReduceOp::Sum);
  EXPECT_GT(bytes[0], 0) << "no embeddings were sent";
  EXPECT_GT(bytes[1], 0) << "nothing crossed between stages";
  if (world.size() == 4) {
    EXPECT_GT(bytes[2], 0) << "the cfg groups exchanged nothing";
  }
  if (world.rank() != 0) return;
  EXPECT_NE(engine.placement_report().find(deal), std::string::npos) << engine.placement_report();
  testing::expect_same_images(result, testing::run_on_one_process(model, request), 2);
}

// The staged workflow (Engine::encode_prompt, denoise, decode: what the Python package's
// encode_prompt and decode call) under a deal whose owners are not rank 0: the budgets put rank 1
// first, so the VAE goes to rank 1, the transformer to rank 0 and the text encoder to rank 2. The
// encoder's owner encodes and the VAE's owner decodes for rank 0; bit-identical to one process.
TEST(QwenImagePlacement, StagedWorkflowUnderPipelineBalanced) {
  auto& world = testing::world();
  if (world.size() != 3) GTEST_SKIP() << "runs at 3 ranks";
  const std::string model = testing::source_path("tests/fixtures/qwen_image_pipeline/tiny");
  engine::EngineOptions options;
  options.model = model;
  options.device_map = "balanced";
  options.max_memory = "0=400000,1=1100000,2=400000";
  engine::Engine engine(world, options);
  auto request = qwen_request();
  request.prompt.resize(1);
  request.negative_prompt.resize(1);
  const auto conditioning = engine.encode_prompt(request);
  EXPECT_EQ(conditioning.empty(), world.rank() != 0);
  const Tensor latents = engine.denoise(conditioning, Tensor(), request);
  const Tensor images = engine.decode(latents, request);
  EXPECT_EQ(images.defined(), world.rank() == 0);
  testing::expect_components_on_owners<QwenImageTransformer2DModel>(
      engine, {{"vae", {1}}, {"text_encoder", {2}}, {"tokenizer", {2}}, {"transformer", {0}}},
      parallel::compute_module_sizes(
          models::qwen_image::qwen_image_transformer_module_tree(model + "/transformer"),
          SafetensorsDType::F32)
          .total());
  if (world.rank() != 0) return;
  EXPECT_NE(
      engine.placement_report().find(R"("pipeline":{"vae":1,"transformer":0,"text_encoder":2})"),
      std::string::npos)
      << engine.placement_report();
  const auto reference = testing::run_on_one_process(model, request);
  ASSERT_EQ(reference.images.size(), 1u);
  testing::expect_bit_identical(latents, reference.images[0].latents, "latents");
  testing::expect_bit_identical(images.select(0), reference.images[0].image, "image");
}

}  // namespace
}  // namespace paradiff
