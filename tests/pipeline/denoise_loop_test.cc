// The shared denoising loop: true classifier-free guidance against diffusers' FluxPipeline
// (negative_prompt + true_cfg_scale; tests/fixtures/flux_pipeline/true_cfg, made by
// tools/make_fixtures/make_true_cfg_fixtures.py), the guidance combination against a double
// reference, and cancellation from the step callback.
#include "paradiff/pipeline/denoise_loop.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "paradiff/io/safetensors.h"
#include "paradiff/pipeline/flux/flux_pipeline.h"
#include "testing/test_util.h"

namespace paradiff::pipeline {
namespace {

TEST(TrueClassifierFreeGuidance, CombinesAsDiffusers) {
  auto rng = testing::make_rng();
  const Tensor c = testing::random_normal({2, 7, 5}, DType::F32, rng);
  const Tensor u = testing::random_normal({2, 7, 5}, DType::F32, rng);
  const auto cd = testing::to_doubles(c), ud = testing::to_doubles(u);
  std::vector<double> ref(cd.size());
  for (size_t i = 0; i < ref.size(); ++i) ref[i] = ud[i] + 4.0 * (cd[i] - ud[i]);
  EXPECT_LE(testing::relative_error(TrueClassifierFreeGuidance(4.0f).combine(c, u), ref), 1e-6);
  EXPECT_THROW(TrueClassifierFreeGuidance(2.0f).combine(c, u.slice(0, 1)), Error);
}

TEST(FluxPipeline, TrueCfgMatchesDiffusers) {
  const std::string dir = testing::source_path("tests/fixtures/flux_pipeline/");
  const auto expected = SafetensorsFile::open(dir + "true_cfg.safetensors");
  std::ifstream in(dir + "true_cfg.json");
  const auto cases = nlohmann::json::parse(in);
  ASSERT_EQ(cases.size(), 2u);
  FluxPipeline pipe(dir + "tiny", DType::F32);
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    SCOPED_TRACE(str_cat("case ", i));
    GenerationOptions o;
    o.height = c["height"], o.width = c["width"];
    o.num_inference_steps = c["num_inference_steps"];
    o.guidance_scale = c["guidance_scale"], o.true_cfg_scale = c["true_cfg_scale"];
    o.max_sequence_length = c["max_sequence_length"], o.seed = c["seed"];
    o = pipe.resolve(o);
    ASSERT_TRUE(pipe.uses_true_cfg(o, true));
    const auto conditioning = pipe.encode_prompt({c["prompt"]}, {c["negative_prompt"]}, o);
    EXPECT_EQ(conditioning.count("negative_prompt_embeds"), 1u);
    const Tensor out = pipe.denoise(conditioning, pipe.prepare_latents(o), o);
    const double err = testing::relative_error(
        out, expected.read(str_cat("case", i, ".final_latents"), DType::F32));
    const double without = testing::relative_error(
        out, expected.read(str_cat("case", i, ".final_latents_without_cfg"), DType::F32));
    std::printf("  true CFG case %zu: relative error %.3g (%.3g from the result without CFG)\n", i,
                err, without);
    EXPECT_LE(err, 1e-3);
    EXPECT_GE(without, 1e-2);  // guidance really changed the result
  }
}

TEST(DenoiseLoop, CallbackSeesEveryStepAndCanCancel) {
  auto scheduler = FlowMatchEulerDiscreteScheduler::from_pretrained(
      testing::source_path("tests/fixtures/flux_pipeline/tiny/scheduler"));
  scheduler.set_timesteps(4, 0.5);
  DenoiseLoop loop;
  loop.scheduler = &scheduler;
  int predictions = 0;
  loop.predict = [&](const Tensor& latents, float, Branch) {
    ++predictions;
    return Tensor::zeros(latents.shape(), DType::F32);
  };
  std::vector<int64_t> seen;
  loop.on_step = [&](const StepProgress& p) {
    seen.push_back(p.step);
    EXPECT_EQ(p.steps, 4);
    return p.step < 2;
  };
  try {
    loop.run(Tensor::zeros({1, 4, 8}, DType::F32));
    FAIL() << "not cancelled";
  } catch (const GenerationCancelled& e) {
    EXPECT_NE(std::string(e.what()).find("cancelled after step 2"), std::string::npos);
  }
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(predictions, 2);
}

TEST(DenoiseLoop, StopsNamingTheStepWhenLatentsTurnNonFinite) {
  auto scheduler = FlowMatchEulerDiscreteScheduler::from_pretrained(
      testing::source_path("tests/fixtures/flux_pipeline/tiny/scheduler"));
  scheduler.set_timesteps(4, 0.5);
  DenoiseLoop loop;
  loop.scheduler = &scheduler;
  int calls = 0;
  loop.predict = [&](const Tensor& latents, float, Branch) {
    Tensor out = Tensor::zeros(latents.shape(), DType::F32);
    if (++calls == 2) out.data<float>()[3] = std::nanf("");
    return out;
  };
  try {
    loop.run(Tensor::zeros({1, 4, 8}, DType::F32));
    FAIL() << "NaN latents accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("NaN or infinite value after step 2 of 4"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace paradiff::pipeline
