// The whole text-to-image pipeline against diffusers' FluxPipeline on a tiny random pipeline
// folder (tests/fixtures/flux_pipeline, made by tools/make_fixtures/make_pipeline_fixtures.py):
// starting latents bit-identical, final latents within 1e-3 (fp32), decoded image likewise.
#include "paradiff/pipeline/flux/flux_pipeline.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "paradiff/io/safetensors.h"
#include "testing/test_util.h"

namespace paradiff::pipeline {
namespace {

struct Case {
  std::string prompt;
  GenerationOptions options;
};

std::vector<Case> load_cases() {
  std::ifstream in(testing::source_path("tests/fixtures/flux_pipeline/cases.json"));
  const auto json = nlohmann::json::parse(in);
  std::vector<Case> cases;
  for (const auto& c : json) {
    GenerationOptions o;
    o.height = c["height"];
    o.width = c["width"];
    o.num_inference_steps = c["num_inference_steps"];
    o.guidance_scale = c["guidance_scale"];
    o.max_sequence_length = c["max_sequence_length"];
    o.seed = c["seed"];
    cases.push_back({c["prompt"], o});
  }
  return cases;
}

TEST(FluxPipeline, MatchesDiffusersEndToEnd) {
  const auto expected = SafetensorsFile::open(
      testing::source_path("tests/fixtures/flux_pipeline/expected.safetensors"));
  FluxPipeline pipe(testing::source_path("tests/fixtures/flux_pipeline/tiny"), DType::F32);
  const auto cases = load_cases();
  ASSERT_EQ(cases.size(), 3u);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i) + ": \"" + cases[i].prompt + "\"");
    const GenerationOptions o = pipe.resolve(cases[i].options);
    const Tensor start = pipe.prepare_latents(o);
    EXPECT_EQ(testing::relative_error(
                  start, expected.read(str_cat("case", i, ".initial_latents"), DType::F32)),
              0.0);
    const Conditioning embeds = pipe.encode_prompt({cases[i].prompt}, {}, o);
    const Tensor final_latents = pipe.denoise(embeds, start, o);
    const double err = testing::relative_error(
        final_latents, expected.read(str_cat("case", i, ".final_latents"), DType::F32));
    std::printf("  case %zu: final latents relative error %.3g\n", i, err);
    EXPECT_LE(err, 1e-3);
    const std::string image_name = str_cat("case", i, ".image");
    if (expected.contains(image_name)) {
      const double image_err = testing::relative_error(pipe.decode(final_latents, o),
                                                       expected.read(image_name, DType::F32));
      std::printf("  case %zu: image relative error %.3g\n", i, image_err);
      EXPECT_LE(image_err, 1e-3);
    }
  }
}

TEST(FluxPipeline, RefusesBadFoldersAndSizesBeforeHeavyWork) {
  try {
    FluxPipeline("/nonexistent-folder", DType::F32);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
  try {
    FluxPipeline(testing::source_path("tests/fixtures/flux_transformer/tiny_noguidance"),
                 DType::F32);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no model_index.json"), std::string::npos) << e.what();
  }
  const FluxPipeline pipe(testing::source_path("tests/fixtures/flux_pipeline/tiny"), DType::F32);
  const int64_t patch = 2 * pipe.vae_scale_factor();
  GenerationOptions o;
  o.height = patch - 1;
  EXPECT_THROW(pipe.resolve(o), Error);
  o.height = 16 * patch + 1;  // rounded down with a warning, as diffusers does
  EXPECT_EQ(pipe.resolve(o).height, 16 * patch);
  o.num_inference_steps = 0;
  EXPECT_THROW(pipe.resolve(o), Error);
  o.num_inference_steps = 2;
  o.max_sequence_length = 513;
  EXPECT_THROW(pipe.resolve(o), Error);
}

}  // namespace
}  // namespace paradiff::pipeline
