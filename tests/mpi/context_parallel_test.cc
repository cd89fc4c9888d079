// Context parallelism against the single-process result, for every mode the world size allows:
// Ulysses, ring with each rotate method, unified 2x2, and context parallel inside data-parallel
// groups. diffusers' fixtures and random models, token counts not divisible by the degree, head
// counts not divisible by the Ulysses degree. fp32: relative error <= 1e-5.
#include <gtest/gtest.h>

#include <cstdio>

#include "mpi_world.h"
#include "paradiff/dist/tensor_broadcast.h"
#include "paradiff/io/safetensors.h"
#include "paradiff/models/flux/flux_transformer.h"
#include "paradiff/pipeline/flux/flux_pipeline.h"
#include "testing/flux_inputs.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

using models::flux::FluxTransformer2DModel;
using models::flux::FluxTransformerConfig;
using models::flux::FluxTransformerInputs;
using parallel::ContextParallelConfig;

std::vector<ContextParallelConfig> configs_for_world() {
  const int w = testing::launched_world_size();
  std::vector<ContextParallelConfig> out;
  if (w < 2) return out;
  out.push_back({1, w, true, "p2p"});
  for (const char* rotate : {"allgather", "alltoall", "p2p"}) out.push_back({w, 1, true, rotate});
  if (w == 4) {
    for (const char* rotate : {"allgather", "alltoall", "p2p"}) out.push_back({2, 2, true, rotate});
    out.push_back({1, 2, true, "p2p"});   // two data-parallel groups of Ulysses 2
    out.push_back({2, 1, false, "p2p"});  // two groups of ring 2, merging without fp32
  }
  return out;
}

std::string config_name(const ::testing::TestParamInfo<ContextParallelConfig>& info) {
  const auto& c = info.param;
  return str_cat("r", c.ring_degree, "u", c.ulysses_degree, "_", c.rotate_method,
                 c.convert_to_fp32 ? "" : "_nofp32");
}

class ContextParallel : public ::testing::TestWithParam<ContextParallelConfig> {
 protected:
  std::shared_ptr<parallel::DeviceMesh> mesh() {
    return std::make_shared<parallel::DeviceMesh>(testing::world(), GetParam());
  }
  // Runs `model` single-process, then under the mesh, and compares.
  void expect_equal_to_single_process(FluxTransformer2DModel& model,
                                      const FluxTransformerInputs& in, double tolerance,
                                      const std::string& what) {
    const Tensor reference = model.forward(in);
    model.enable_parallelism(mesh());
    const Tensor parallel = model.forward(in);
    ASSERT_EQ(parallel.shape(), reference.shape());
    const double err = testing::relative_error(parallel, reference);
    if (testing::world().rank() == 0)
      std::printf("  %s under %s: relative error %.3g\n", what.c_str(),
                  GetParam().describe().c_str(), err);
    EXPECT_LE(err, tolerance) << what << " on rank " << testing::world().rank();
  }
};

TEST_P(ContextParallel, DiffusersFixturesMatchSingleProcess) {
  for (const char* name :
       {"tiny_noguidance", "guidance_batch2", "in64_outnull", "nonzero_ids", "bf16_weights_bfl"}) {
    const std::string dir = testing::source_path(str_cat("tests/fixtures/flux_transformer/", name));
    auto model = FluxTransformer2DModel::from_pretrained(dir + "/transformer", DType::F32);
    expect_equal_to_single_process(model, FluxTransformerInputs::load(dir + "/inputs.safetensors"),
                                   1e-5, name);
  }
}

TEST_P(ContextParallel, RandomModelWithUnevenTokensAndHeadsMatchesSingleProcess) {
  auto rng = testing::make_rng();
  FluxTransformerConfig c;
  c.num_attention_heads = 5;  // divisible by no Ulysses degree tested
  c.attention_head_dim = 32;
  c.axes_dims_rope = {8, 12, 12};
  c.num_layers = 2;
  c.num_single_layers = 2;
  c.in_channels = 16;
  c.out_channels = 16;
  c.joint_attention_dim = 48;
  c.pooled_projection_dim = 24;
  c.guidance_embeds = true;
  // 263 image and 7 text tokens: not divisible by 2, 3 or 4; batch 2.
  const auto in = testing::random_flux_inputs(c, 2, 263, 7, 17, rng);
  for (DType compute : {DType::F32, DType::BF16}) {
    auto model = FluxTransformer2DModel::with_random_weights(c, compute, rng());
    expect_equal_to_single_process(model, in, compute == DType::F32 ? 1e-5 : 2e-2,
                                   str_cat("random model, ", dtype_name(compute)));
  }
}

TEST_P(ContextParallel, ParallelConfigAtLoadTimeEqualsEnableParallelism) {
  const std::string dir = testing::source_path("tests/fixtures/flux_transformer/guidance_batch2");
  const auto in = FluxTransformerInputs::load(dir + "/inputs.safetensors");
  auto single = FluxTransformer2DModel::from_pretrained(dir + "/transformer", DType::F32);
  const Tensor reference = single.forward(in);
  auto loaded = FluxTransformer2DModel::from_pretrained(
      dir + "/transformer", DType::F32, parallel::ParallelConfig{GetParam()}, testing::world());
  EXPECT_TRUE(loaded.parallelism_enabled());
  EXPECT_LE(testing::relative_error(loaded.forward(in), reference), 1e-5);
  single.enable_parallelism(GetParam(), testing::world());
  EXPECT_LE(testing::relative_error(single.forward(in), reference), 1e-5);
}

TEST_P(ContextParallel, FewerTextTokensThanRanks) {
  auto rng = testing::make_rng();
  FluxTransformerConfig c;
  c.num_attention_heads = 2;
  c.attention_head_dim = 16;
  c.axes_dims_rope = {4, 6, 6};
  c.num_layers = 1;
  c.num_single_layers = 1;
  c.joint_attention_dim = 32;
  c.pooled_projection_dim = 16;
  const auto in =
      testing::random_flux_inputs(c, 1, 9, 1, 17, rng);  // one text token: some ranks hold none
  auto model = FluxTransformer2DModel::with_random_weights(c, DType::F32, rng());
  expect_equal_to_single_process(model, in, 1e-5, "one text token");
}

// The whole pipeline under context parallelism: the final latents of diffusers' tiny pipeline
// fixture (tests/fixtures/flux_pipeline) within 1e-3, prompt encoded by rank 0 and broadcast.
TEST_P(ContextParallel, PipelineFinalLatentsMatchDiffusers) {
  auto mesh = this->mesh();
  pipeline::FluxPipeline pipe(
      pipeline::ModelIndex::load(testing::source_path("tests/fixtures/flux_pipeline/tiny")),
      pipeline::PipelineRuntime{DType::F32, mesh, {}});
  pipeline::GenerationOptions o;
  o.height = 64, o.width = 48, o.num_inference_steps = 3, o.guidance_scale = 3.5f;
  o.max_sequence_length = 16, o.seed = 0;
  o = pipe.resolve(o);
  pipeline::Conditioning embeds;
  if (mesh->context_parallel().rank() == 0)
    embeds =
        pipe.encode_prompt({"a large red circle at the top left on a white background"}, {}, o);
  dist::broadcast_tensors(mesh->context_parallel(), embeds, 0);
  const Tensor latents = pipe.denoise(embeds, pipe.prepare_latents(o), o);
  const auto expected = SafetensorsFile::open(
      testing::source_path("tests/fixtures/flux_pipeline/expected.safetensors"));
  const double err =
      testing::relative_error(latents, expected.read("case0.final_latents", DType::F32));
  if (testing::world().rank() == 0)
    std::printf("  pipeline under %s: final latents relative error %.3g\n",
                GetParam().describe().c_str(), err);
  EXPECT_LE(err, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Modes, ContextParallel, ::testing::ValuesIn(configs_for_world()),
                         config_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ContextParallel);

}  // namespace
}  // namespace paradiff
