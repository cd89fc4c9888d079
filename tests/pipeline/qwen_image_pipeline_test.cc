// The whole Qwen-Image text-to-image pipeline against diffusers' QwenImagePipeline on a tiny
// random pipeline folder (tests/fixtures/qwen_image_pipeline, made by
// tools/make_fixtures/make_qwen_image_pipeline_fixtures.py), with and without true CFG, on
// non-square sizes: starting latents bit-identical, final latents and the decoded image within
// 1e-3 (fp32).
#include "paradiff/pipeline/qwen_image/qwen_image_pipeline.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "paradiff/io/safetensors.h"
#include "testing/test_util.h"

namespace paradiff::pipeline {
namespace {

std::string tiny() {
  return testing::source_path("tests/fixtures/qwen_image_pipeline/tiny");
}

struct Case {
  std::string prompt;
  std::vector<std::string> negative_prompts;
  GenerationOptions options;
};

std::vector<Case> load_cases() {
  std::ifstream in(testing::source_path("tests/fixtures/qwen_image_pipeline/cases.json"));
  const auto json = nlohmann::json::parse(in);
  std::vector<Case> cases;
  for (const auto& c : json) {
    Case out;
    out.prompt = c["prompt"];
    if (!c["negative_prompt"].is_null()) out.negative_prompts = {c["negative_prompt"]};
    GenerationOptions& o = out.options;
    o.height = c["height"];
    o.width = c["width"];
    o.num_inference_steps = c["num_inference_steps"];
    o.true_cfg_scale = c["true_cfg_scale"];
    o.max_sequence_length = c["max_sequence_length"];
    o.seed = c["seed"];
    cases.push_back(out);
  }
  return cases;
}

TEST(QwenImagePipeline, MatchesDiffusersEndToEnd) {
  const auto expected = SafetensorsFile::open(
      testing::source_path("tests/fixtures/qwen_image_pipeline/expected.safetensors"));
  QwenImagePipeline pipe(tiny(), DType::F32);
  EXPECT_EQ(pipe.vae_scale_factor(), 4);
  const auto cases = load_cases();
  ASSERT_EQ(cases.size(), 3u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE("case " + std::to_string(i) + ": \"" + c.prompt + "\"");
    const GenerationOptions o = pipe.resolve(c.options);
    EXPECT_EQ(pipe.uses_true_cfg(o, !c.negative_prompts.empty()), c.options.true_cfg_scale > 1.0f);
    const Tensor start = pipe.prepare_latents(o);
    EXPECT_EQ(testing::relative_error(
                  start, expected.read(str_cat("case", i, ".initial_latents"), DType::F32)),
              0.0);
    const Conditioning embeds = pipe.encode_prompt({c.prompt}, c.negative_prompts, o);
    EXPECT_EQ(embeds.count("negative_prompt_embeds"), c.negative_prompts.empty() ? 0u : 1u);
    const Tensor final_latents = pipe.denoise(embeds, start, o);
    const double err = testing::relative_error(
        final_latents, expected.read(str_cat("case", i, ".final_latents"), DType::F32));
    std::printf("  case %zu: final latents relative error %.3g\n", i, err);
    EXPECT_LE(err, 1e-3);
    const double image_err = testing::relative_error(
        pipe.decode(final_latents, o), expected.read(str_cat("case", i, ".image"), DType::F32));
    std::printf("  case %zu: image relative error %.3g\n", i, image_err);
    EXPECT_LE(image_err, 1e-3);
  }
}

TEST(QwenImagePipeline, ResolvesAsDiffusersAndRefusesWhatItCannotRun) {
  QwenImagePipeline pipe(tiny(), DType::F32);
  // Default size: default_sample_size (128) times vae_scale_factor.
  GenerationOptions o = pipe.resolve({});
  EXPECT_EQ(o.height, 512);
  EXPECT_EQ(o.width, 512);
  // Sizes rounded down to multiples of vae_scale_factor · 2 = 8.
  o.height = 37, o.width = 50;
  o = pipe.resolve(o);
  EXPECT_EQ(o.height, 32);
  EXPECT_EQ(o.width, 48);
  o.max_sequence_length = 1024;
  EXPECT_NO_THROW(pipe.resolve(o));
  o.max_sequence_length = 1025;
  EXPECT_THROW(pipe.resolve(o), Error);
  // paradiff's default true_cfg_scale (1) runs no CFG even with a negative prompt.
  EXPECT_FALSE(pipe.uses_true_cfg(GenerationOptions{}, true));
  GenerationOptions cfg;
  cfg.true_cfg_scale = 4.0f;
  EXPECT_TRUE(pipe.uses_true_cfg(cfg, true));
  EXPECT_FALSE(pipe.uses_true_cfg(cfg, false));
  try {
    QwenImagePipeline(testing::source_path("tests/fixtures/flux_pipeline/tiny"), DType::F32);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a QwenImagePipeline"), std::string::npos) << e.what();
  }
}

TEST(QwenImagePipeline, NormRescaledGuidanceKeepsTheConditionalNorm) {
  Tensor cond = Tensor::empty({1, 1, 2}, DType::F32);
  Tensor uncond = Tensor::empty({1, 1, 2}, DType::F32);
  cond.data<float>()[0] = 3.0f, cond.data<float>()[1] = 4.0f;
  uncond.data<float>()[0] = 1.0f, uncond.data<float>()[1] = 0.0f;
  // comb = (1, 0) + 2 · (2, 4) = (5, 8); rescaled to norm 5.
  const Tensor out = NormRescaledTrueCfgGuidance(2.0f).combine(cond, uncond);
  const double n = std::sqrt(89.0);
  EXPECT_NEAR(out.data<float>()[0], 5.0 * 5.0 / n, 1e-6);
  EXPECT_NEAR(out.data<float>()[1], 8.0 * 5.0 / n, 1e-6);
}

}  // namespace
}  // namespace paradiff::pipeline
