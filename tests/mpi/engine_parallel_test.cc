// The general mesh and the engine under every layout of the launched world: data x cfg x ring x
// ulysses. The mesh's coordinates and communicators against the rank formula; whole generations
// (several prompts) against the single-process engine on the same rank; true CFG with cfg
// parallel against diffusers and against sequential CFG. Each parallel run must also show that
// the work was split: prompts per replica, bytes through the mesh.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mpi_world.h"
#include "paradiff/dist/self_communicator.h"
#include "paradiff/engine/engine.h"
#include "paradiff/io/safetensors.h"
#include "paradiff/parallel/data_parallel.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

using parallel::ContextParallelConfig;
using parallel::MeshDim;
using parallel::ParallelConfig;

ParallelConfig layout(int cfg, int ring, int ulysses) {
  ParallelConfig c;
  c.cfg_degree = cfg;
  if (ring * ulysses > 1)
    c.context_parallel_config = ContextParallelConfig{ring, ulysses, true, "p2p"};
  return c;
}

// Every cfg x ring x ulysses that divides the launched world (the rest is data parallel).
std::vector<ParallelConfig> layouts_for_world() {
  const int w = testing::launched_world_size();
  std::vector<ParallelConfig> out;
  if (w < 2) return out;
  for (int cfg : {1, 2})
    for (int ring = 1; ring <= w; ++ring)
      for (int ulysses = 1; ulysses <= w; ++ulysses)
        if (w % (cfg * ring * ulysses) == 0) out.push_back(layout(cfg, ring, ulysses));
  return out;
}

std::string layout_name(const ::testing::TestParamInfo<ParallelConfig>& info) {
  const auto& c = info.param;
  return str_cat("d", testing::launched_world_size() / c.replica_degree(), "c", c.cfg_degree, "r",
                 c.ring_degree(), "u", c.ulysses_degree());
}

class EngineParallel : public ::testing::TestWithParam<ParallelConfig> {};

TEST_P(EngineParallel, MeshCoordinatesAndCommunicatorsFollowTheRankFormula) {
  auto& world = testing::world();
  parallel::DeviceMesh mesh(world, GetParam());
  const int dims[4] = {mesh.size(MeshDim::Data), mesh.size(MeshDim::Cfg), mesh.size(MeshDim::Ring),
                       mesh.size(MeshDim::Ulysses)};
  EXPECT_EQ(dims[0] * dims[1] * dims[2] * dims[3], world.size());
  const int rank = ((mesh.index(MeshDim::Data) * dims[1] + mesh.index(MeshDim::Cfg)) * dims[2] +
                    mesh.index(MeshDim::Ring)) *
                       dims[3] +
                   mesh.index(MeshDim::Ulysses);
  EXPECT_EQ(rank, world.rank());
  const int stride[4] = {dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1};
  for (MeshDim dim : {MeshDim::Data, MeshDim::Cfg, MeshDim::Ring, MeshDim::Ulysses}) {
    const int d = static_cast<int>(dim);
    auto& comm = mesh.comm(dim);
    EXPECT_EQ(comm.size(), dims[d]) << parallel::mesh_dim_name(dim);
    EXPECT_EQ(comm.rank(), mesh.index(dim)) << parallel::mesh_dim_name(dim);
    // The members are exactly the ranks that differ only along `dim`.
    int64_t sum = world.rank();
    comm.allreduce(&sum, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
    const int64_t base = world.rank() - static_cast<int64_t>(mesh.index(dim)) * stride[d];
    EXPECT_EQ(sum, base * dims[d] + static_cast<int64_t>(stride[d]) * dims[d] * (dims[d] - 1) / 2)
        << parallel::mesh_dim_name(dim);
  }
  EXPECT_EQ(mesh.replica().size(), GetParam().replica_degree());
  EXPECT_EQ(mesh.context_parallel().size(), dims[2] * dims[3]);
}

engine::GenerationRequest request_for(const ParallelConfig& config) {
  engine::GenerationRequest r;
  r.height = 32, r.width = 48;
  r.num_inference_steps = 2;
  r.max_sequence_length = 8;
  r.seed = 3;
  r.prompt = {"a red circle", "a blue square", "a green triangle"};
  if (config.cfg_degree > 1) {
    r.negative_prompt = {"a gray background"};
    r.true_cfg_scale = 3.0f;
  }
  return r;
}

TEST_P(EngineParallel, GenerationEqualsTheSingleProcessEngine) {
  const std::string model = testing::source_path("tests/fixtures/flux_pipeline/tiny");
  const auto request = request_for(GetParam());
  auto& world = testing::world();
  engine::Engine engine(world, engine::EngineOptions{model, DType::F32, GetParam(), {}});
  engine.mesh().reset_comm_stats();
  const auto result = engine.run(request);
  // The work was split: each replica ran its share of the prompts, and a replica of several
  // ranks moved data between them.
  const int replicas = engine.replicas();
  EXPECT_EQ(result.stats.prompts_here,
            parallel::real_items(3, replicas, engine.mesh().index(MeshDim::Data)));
  if (GetParam().replica_degree() > 1) {
    EXPECT_GT(engine.mesh().context_parallel().stats().bytes_sent +
                  engine.mesh().comm(MeshDim::Cfg).stats().bytes_sent,
              0);
  }
  if (world.rank() != 0) {
    EXPECT_TRUE(result.images.empty());
    return;
  }
  dist::SelfCommunicator self;
  engine::Engine single(self, engine::EngineOptions{model, DType::F32, {}, {}});
  const auto reference = single.run(request);
  ASSERT_EQ(result.images.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(result.images[i].index, static_cast<int64_t>(i));
    const double err =
        testing::relative_error(result.images[i].latents, reference.images[i].latents);
    std::printf("  %s, prompt %zu: latents relative error %.3g\n", GetParam().describe().c_str(), i,
                err);
    EXPECT_LE(err, 1e-5);
    EXPECT_LE(testing::relative_error(result.images[i].image, reference.images[i].image), 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, EngineParallel, ::testing::ValuesIn(layouts_for_world()),
                         layout_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(EngineParallel);

// CFG parallel reproduces diffusers' true CFG (tests/fixtures/flux_pipeline/true_cfg).
TEST(CfgParallel, MatchesDiffusersTrueCfg) {
  auto& world = testing::world();
  if (world.size() % 2 != 0) GTEST_SKIP() << "cfg parallel needs an even world";
  const std::string dir = testing::source_path("tests/fixtures/flux_pipeline/");
  std::ifstream in(dir + "true_cfg.json");
  const auto c = nlohmann::json::parse(in).at(0);
  engine::GenerationRequest r;
  r.prompt = {c["prompt"]};
  r.negative_prompt = {c["negative_prompt"]};
  r.true_cfg_scale = c["true_cfg_scale"];
  r.height = c["height"], r.width = c["width"];
  r.num_inference_steps = c["num_inference_steps"];
  r.guidance_scale = c["guidance_scale"];
  r.max_sequence_length = c["max_sequence_length"];
  r.seed = c["seed"];
  r.output_type = engine::OutputType::Latent;
  // cfg 2, and context parallel inside each cfg group when the world allows.
  const ParallelConfig config = layout(2, 1, world.size() / 2);
  engine::Engine engine(world, engine::EngineOptions{dir + "tiny", DType::F32, config, {}});
  engine.mesh().reset_comm_stats();
  const auto result = engine.run(r);
  EXPECT_GT(engine.mesh().comm(MeshDim::Cfg).stats().bytes_sent, 0);  // predictions exchanged
  if (world.rank() != 0) return;
  ASSERT_EQ(result.images.size(), 1u);
  const auto expected = SafetensorsFile::open(dir + "true_cfg.safetensors");
  const double err = testing::relative_error(result.images[0].latents,
                                             expected.read("case0.final_latents", DType::F32));
  std::printf("  %s: true CFG latents relative error %.3g against diffusers\n",
              config.describe().c_str(), err);
  EXPECT_LE(err, 1e-3);
}

}  // namespace
}  // namespace paradiff
