// A Qwen-Image folder through the engine on one process: the registry picks QwenImagePipeline
// from model_index.json, and a request with a negative prompt and --true-cfg-scale reproduces
// diffusers' output (tests/fixtures/qwen_image_pipeline, case 1).
#include <gtest/gtest.h>

#include <cstdio>

#include "paradiff/dist/self_communicator.h"
#include "paradiff/engine/engine.h"
#include "paradiff/io/safetensors.h"
#include "testing/test_util.h"

namespace paradiff::engine {
namespace {

TEST(Engine, RunsAQwenImageFolderThroughTheRegistry) {
  dist::SelfCommunicator world;
  Engine engine(
      world,
      EngineOptions{
          testing::source_path("tests/fixtures/qwen_image_pipeline/tiny"), DType::F32, {}, {}});
  // tests/fixtures/qwen_image_pipeline/cases.json, case 1.
  GenerationRequest request;
  request.prompt = {"a small blue house by a lake"};
  request.negative_prompt = {"blurry, low quality"};
  request.true_cfg_scale = 4.0f;
  request.height = 32, request.width = 24;
  request.num_inference_steps = 3;
  request.max_sequence_length = 512;
  request.seed = 42;
  const auto result = engine.run(request);
  ASSERT_EQ(result.images.size(), 1u);
  const auto expected = SafetensorsFile::open(
      testing::source_path("tests/fixtures/qwen_image_pipeline/expected.safetensors"));
  const double latents_err = testing::relative_error(
      result.images[0].latents, expected.read("case1.final_latents", DType::F32));
  const double image_err = testing::relative_error(
      result.images[0].image, expected.read("case1.image", DType::F32).select(0));
  std::printf("  final latents relative error %.3g, image %.3g\n", latents_err, image_err);
  EXPECT_LE(latents_err, 1e-3);
  EXPECT_LE(image_err, 1e-3);
}

}  // namespace
}  // namespace paradiff::engine
