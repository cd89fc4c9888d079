// num_images_per_prompt through the engine on one process, against diffusers
// (tests/fixtures/num_images, made by tools/make_fixtures/make_num_images_fixtures.py): prompt
// p's image k starts from row k of ONE draw of n rows from the seed, as one diffusers call with
// prompt=p and num_images_per_prompt=n; each prompt's embeddings (and Qwen's mask) are repeated
// per image; the images come back in diffusers' order (prompt 0's images first). Qwen's pair
// case is one diffusers call per prompt: a batched call repeats the mask in another order than
// the embeddings (see the fixture script), and a call per prompt is what paradiff promises.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "paradiff/dist/self_communicator.h"
#include "paradiff/engine/engine.h"
#include "paradiff/io/safetensors.h"
#include "testing/test_util.h"

namespace paradiff::engine {
namespace {

nlohmann::json cases() {
  std::ifstream in(testing::source_path("tests/fixtures/num_images/cases.json"));
  return nlohmann::json::parse(in);
}

GenerationRequest request_for(const nlohmann::json& c) {
  GenerationRequest r;
  r.prompt = c.at("prompts").get<std::vector<std::string>>();
  r.num_images_per_prompt = c.at("num_images_per_prompt").get<int64_t>();
  r.seed = c.at("seed").get<uint64_t>();
  r.height = c.at("height").get<int64_t>();
  r.width = c.at("width").get<int64_t>();
  r.num_inference_steps = c.at("num_inference_steps").get<int64_t>();
  r.max_sequence_length = c.at("max_sequence_length").get<int64_t>();
  if (c.contains("guidance_scale")) r.guidance_scale = c.at("guidance_scale").get<float>();
  r.output_type = OutputType::Latent;
  return r;
}

TEST(NumImagesPerPrompt, EveryImageMatchesDiffusersInDiffusersOrder) {
  const auto expected =
      SafetensorsFile::open(testing::source_path("tests/fixtures/num_images/expected.safetensors"));
  const auto all = cases();
  ASSERT_EQ(all.size(), 4u);
  for (const auto& c : all) {
    const std::string name =
        c.at("pipeline").get<std::string>() + "." + c.at("case").get<std::string>();
    SCOPED_TRACE(name);
    dist::SelfCommunicator world;
    Engine engine(world, EngineOptions{testing::source_path(str_cat(
                                           "tests/fixtures/", c.at("folder").get<std::string>())),
                                       DType::F32,
                                       {},
                                       {}});
    const GenerationRequest request = request_for(c);
    const int64_t n = request.num_images_per_prompt;
    const auto result = engine.run(request);
    const Tensor want = expected.read(name + ".final_latents", DType::F32);
    ASSERT_EQ(static_cast<int64_t>(result.images.size()), want.dim(0));
    ASSERT_EQ(static_cast<int64_t>(result.images.size()),
              static_cast<int64_t>(request.prompt.size()) * n);
    for (size_t j = 0; j < result.images.size(); ++j) {
      const auto& got = result.images[j];
      EXPECT_EQ(got.index, static_cast<int64_t>(j) / n);
      EXPECT_EQ(got.image_index, static_cast<int64_t>(j) % n);
      EXPECT_FALSE(got.image.defined());
      const double err = testing::relative_error(got.latents, want.slice(j, 1));
      std::printf("  %s, prompt %lld image %lld: latents relative error %.3g\n", name.c_str(),
                  static_cast<long long>(got.index), static_cast<long long>(got.image_index), err);
      EXPECT_LE(err, 1e-3);
    }
    // The images of one prompt differ (each its own row of the draw), and so do the prompts.
    EXPECT_GT(testing::relative_error(result.images[1].latents, result.images[0].latents), 1e-2);
    if (request.prompt.size() > 1) {
      EXPECT_GT(testing::relative_error(result.images[n].latents, result.images[0].latents), 1e-2);
    }
  }
}

TEST(NumImagesPerPrompt, DecodesEveryImageAndOneImageIsTheDefault) {
  dist::SelfCommunicator world;
  Engine engine(
      world,
      EngineOptions{testing::source_path("tests/fixtures/flux_pipeline/tiny"), DType::F32, {}, {}});
  GenerationRequest request;
  request.prompt = {"a red circle", "a blue square"};
  request.height = 32, request.width = 32;
  request.num_inference_steps = 1;
  request.max_sequence_length = 8;
  request.seed = 4;
  EXPECT_EQ(request.num_images_per_prompt, 1);
  const auto one = engine.run(request);
  ASSERT_EQ(one.images.size(), 2u);
  for (const auto& image : one.images) EXPECT_EQ(image.image_index, 0);
  request.num_images_per_prompt = 3;
  int64_t rows_seen = 0;
  const auto three =
      engine.run(request, [&](const pipeline::StepProgress&, const std::vector<int64_t>& prompts) {
        EXPECT_EQ(prompts, (std::vector<int64_t>{0, 0, 0, 1, 1, 1}));
        rows_seen = static_cast<int64_t>(prompts.size());
        return true;
      });
  EXPECT_EQ(rows_seen, 6);
  EXPECT_EQ(three.stats.prompts_here, 6);
  ASSERT_EQ(three.images.size(), 6u);
  for (size_t j = 0; j < 6; ++j) {
    EXPECT_EQ(three.images[j].index, static_cast<int64_t>(j / 3));
    EXPECT_EQ(three.images[j].image_index, static_cast<int64_t>(j % 3));
    ASSERT_TRUE(three.images[j].image.defined());
    EXPECT_EQ(three.images[j].image.dim(0), 3);
  }
}

TEST(NumImagesPerPrompt, RefusesCountsOutOfRangeNamingTheValue) {
  GenerationRequest request;
  request.prompt = {"x"};
  for (int64_t bad : {int64_t{0}, int64_t{-2}, kMaxImagesPerPrompt + 1}) {
    request.num_images_per_prompt = bad;
    try {
      request.validate();
      ADD_FAILURE() << "num_images_per_prompt " << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(str_cat("num_images_per_prompt must be between 1 and ",
                                                   kMaxImagesPerPrompt, ", got ", bad)),
                std::string::npos)
          << e.what();
    }
  }
  request.num_images_per_prompt = kMaxImagesPerPrompt;
  EXPECT_NO_THROW(request.validate());
}

}  // namespace
}  // namespace paradiff::engine
