// Qwen-Image under context parallelism against the single-process result, for every mode the
// world size allows: Ulysses, ring with each rotate method, unified 2x2 and context parallel
// inside data-parallel groups. diffusers' fixtures (padded masks included) and a random model
// with token and head counts divisible by no degree. fp32: relative error <= 1e-5.
#include <gtest/gtest.h>

#include <cstdio>

#include "mpi_world.h"
#include "paradiff/models/qwen_image/qwen_image_transformer.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

using models::qwen_image::QwenImageTransformer2DModel;
using models::qwen_image::QwenImageTransformerConfig;
using models::qwen_image::QwenImageTransformerInputs;
using parallel::ContextParallelConfig;

std::vector<ContextParallelConfig> configs_for_world() {
  const int w = testing::launched_world_size();
  std::vector<ContextParallelConfig> out;
  if (w < 2) return out;
  out.push_back({1, w, true, "p2p"});
  for (const char* rotate : {"allgather", "alltoall", "p2p"}) out.push_back({w, 1, true, rotate});
  if (w == 4) {
    for (const char* rotate : {"allgather", "alltoall", "p2p"}) out.push_back({2, 2, true, rotate});
    out.push_back({1, 2, true, "p2p"});  // two data-parallel groups of Ulysses 2
  }
  return out;
}

std::string config_name(const ::testing::TestParamInfo<ContextParallelConfig>& info) {
  const auto& c = info.param;
  return str_cat("r", c.ring_degree, "u", c.ulysses_degree, "_", c.rotate_method);
}

class QwenImageContextParallel : public ::testing::TestWithParam<ContextParallelConfig> {
 protected:
  void expect_equal_to_single_process(QwenImageTransformer2DModel& model,
                                      const QwenImageTransformerInputs& in, double tolerance,
                                      const std::string& what) {
    const Tensor reference = model.forward(in);
    model.enable_parallelism(std::make_shared<parallel::DeviceMesh>(testing::world(), GetParam()));
    const Tensor parallel = model.forward(in);
    ASSERT_EQ(parallel.shape(), reference.shape());
    const double err = testing::relative_error(parallel, reference);
    if (testing::world().rank() == 0)
      std::printf("  %s under %s: relative error %.3g\n", what.c_str(),
                  GetParam().describe().c_str(), err);
    EXPECT_LE(err, tolerance) << what << " on rank " << testing::world().rank();
  }
};

TEST_P(QwenImageContextParallel, DiffusersFixturesMatchSingleProcess) {
  for (const char* name : {"tiny", "heads3_nonsquare", "mask_batch3", "large_positions"}) {
    const std::string dir =
        testing::source_path(str_cat("tests/fixtures/qwen_image_transformer/", name));
    auto model = QwenImageTransformer2DModel::from_pretrained(dir + "/transformer", DType::F32);
    expect_equal_to_single_process(
        model, QwenImageTransformerInputs::load(dir + "/inputs.safetensors"), 1e-5, name);
  }
}

TEST_P(QwenImageContextParallel, RandomModelWithUnevenTokensHeadsAndMaskMatchesSingleProcess) {
  auto rng = testing::make_rng();
  QwenImageTransformerConfig c;
  c.num_attention_heads = 5;  // divisible by no Ulysses degree tested
  c.attention_head_dim = 16;
  c.axes_dims_rope = {4, 6, 6};
  c.num_layers = 2;
  c.in_channels = 16;
  c.out_channels = 4;
  c.joint_attention_dim = 24;
  // A 7 x 11 grid (77 image tokens) and 13 padded text tokens, 10 and 1 of them valid: no count
  // divisible by 2, 3 or 4, and one element with fewer text tokens than ranks.
  QwenImageTransformerInputs in;
  in.hidden_states = testing::random_normal({2, 77, c.in_channels}, DType::F32, rng);
  in.encoder_hidden_states =
      testing::random_normal({2, 13, c.joint_attention_dim}, DType::F32, rng);
  in.timestep = testing::random_uniform({2}, DType::F32, rng, 0.0f, 1.0f);
  in.img_shapes.assign(2, {{1, 7, 11}});
  in.encoder_hidden_states_mask = Tensor::zeros({2, 13}, DType::F32);
  for (int64_t j = 0; j < 10; ++j) in.encoder_hidden_states_mask.data<float>()[j] = 1.0f;
  in.encoder_hidden_states_mask.data<float>()[13 + 4] = 1.0f;
  for (DType compute : {DType::F32, DType::BF16}) {
    auto model = QwenImageTransformer2DModel::with_random_weights(c, compute, rng());
    expect_equal_to_single_process(model, in, compute == DType::F32 ? 1e-5 : 2e-2,
                                   str_cat("random model, ", dtype_name(compute)));
  }
}

TEST_P(QwenImageContextParallel, ParallelConfigAtLoadTimeEqualsEnableParallelism) {
  const std::string dir = testing::source_path("tests/fixtures/qwen_image_transformer/mask_batch3");
  const auto in = QwenImageTransformerInputs::load(dir + "/inputs.safetensors");
  const auto single =
      QwenImageTransformer2DModel::from_pretrained(dir + "/transformer", DType::F32);
  const Tensor reference = single.forward(in);
  const auto loaded = QwenImageTransformer2DModel::from_pretrained(
      dir + "/transformer", DType::F32, parallel::ParallelConfig{GetParam()}, testing::world());
  EXPECT_TRUE(loaded.parallelism_enabled());
  EXPECT_LE(testing::relative_error(loaded.forward(in), reference), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Modes, QwenImageContextParallel, ::testing::ValuesIn(configs_for_world()),
                         config_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(QwenImageContextParallel);

}  // namespace
}  // namespace paradiff
