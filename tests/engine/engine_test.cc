// The engine on one process: a request runs every stage and hands back every prompt's latents and
// image, bit-identical to running the pipeline's stages by hand; components load once across
// requests; requests the engine cannot run are refused before any weight is read.
#include "paradiff/engine/engine.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "paradiff/dist/self_communicator.h"
#include "paradiff/pipeline/flux/flux_pipeline.h"
#include "testing/test_util.h"

namespace paradiff::engine {
namespace {

std::string tiny() {
  return testing::source_path("tests/fixtures/flux_pipeline/tiny");
}

GenerationRequest small_request() {
  GenerationRequest r;
  r.prompt = {"a red circle", "a blue square", ""};
  r.height = 32, r.width = 48;
  r.num_inference_steps = 2;
  r.max_sequence_length = 8;
  r.seed = 5;
  return r;
}

TEST(Engine, RunEqualsThePipelineStagesBitForBit) {
  dist::SelfCommunicator world;
  Engine engine(world, EngineOptions{tiny(), DType::F32, {}, {}});
  const GenerationRequest request = small_request();
  int steps_seen = 0;
  const auto result = engine.run(
      request, [&](const pipeline::StepProgress& p, const std::vector<int64_t>& prompts) {
        EXPECT_EQ(prompts, (std::vector<int64_t>{0, 1, 2}));
        steps_seen = static_cast<int>(p.step);
        return true;
      });
  EXPECT_EQ(steps_seen, 2);
  ASSERT_EQ(result.images.size(), 3u);

  pipeline::FluxPipeline pipe(tiny(), DType::F32);
  const auto o = pipe.resolve(request.options());
  // By hand, as the engine runs them: the prompts as one batch, each from the seed's latents.
  const Tensor start = pipe.prepare_latents(o);
  const Tensor latents =
      pipe.denoise(pipe.encode_prompt(request.prompt, {}, o), concat({start, start, start}, 0), o);
  const Tensor images = pipe.decode(latents, o);
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(request.prompt[i]);
    const auto& got = result.images[i];
    EXPECT_EQ(got.index, static_cast<int64_t>(i));
    EXPECT_EQ(testing::relative_error(got.latents, latents.slice(i, 1)), 0.0);
    EXPECT_EQ(testing::relative_error(got.image, images.select(i)), 0.0);
  }
  EXPECT_EQ(result.stats.steps, 2);
  EXPECT_GT(result.stats.peak_bytes, 0);
}

TEST(Engine, ComponentsLoadOnceAcrossRequestsAndLatentOutputSkipsTheVae) {
  dist::SelfCommunicator world;
  Engine engine(world, EngineOptions{tiny(), DType::F32, {}, {}});
  GenerationRequest request = small_request();
  request.output_type = OutputType::Latent;
  const auto first = engine.run(request);
  EXPECT_FALSE(engine.pipeline().components().is_loaded("vae"));
  for (const auto& image : first.images) EXPECT_FALSE(image.image.defined());
  request.output_type = OutputType::Pil;
  request.prompt = {"a green triangle"};
  engine.run(request);
  for (const char* name : {"text_encoder", "text_encoder_2", "transformer", "vae"})
    EXPECT_EQ(engine.pipeline().components().load_count(name), 1) << name;
}

// Layerwise casting (--storage-dtype bf16 / fp8): the transformer's GEMM weights are kept narrow
// and widened per GEMM, fp32 arithmetic, except the layers diffusers skips (the modulation
// "norm*.linear" layers and the final proj_out stay fp32: in this tiny model they are a large
// share). The latents move by the rounding of the weights only: close to fp32's, not the same.
TEST(Engine, WeightStorageNarrowsTheTransformersGemmWeights) {
  dist::SelfCommunicator world;
  GenerationRequest request = small_request();
  request.output_type = OutputType::Latent;
  Engine full(world, EngineOptions{tiny(), DType::F32, {}, {}});
  const auto want = full.run(request);
  ASSERT_GT(want.stats.weight_bytes, 0);
  struct Case {
    kernels::WeightStorage storage;
    double min_share, max_share, max_error;  // of fp32's weight bytes; latents' relative error
  };
  for (const Case& c : {Case{kernels::WeightStorage::Bf16, 0.5, 0.6, 2e-2},
                        Case{kernels::WeightStorage::Fp8E4M3, 0.25, 0.45, 2e-1}}) {
    SCOPED_TRACE(kernels::weight_storage_name(c.storage));
    EngineOptions narrow_options{tiny(), DType::F32, {}, {}};
    narrow_options.transformer_storage = c.storage;
    Engine narrow(world, narrow_options);
    const auto got = narrow.run(request);
    const double share = static_cast<double>(got.stats.weight_bytes) / want.stats.weight_bytes;
    EXPECT_GT(share, c.min_share);  // some layers stay fp32
    EXPECT_LT(share, c.max_share);
    for (size_t i = 0; i < request.prompt.size(); ++i) {
      const double err = testing::relative_error(got.images[i].latents, want.images[i].latents);
      EXPECT_GT(err, 0.0) << i;
      EXPECT_LT(err, c.max_error) << i;
    }
  }
  // bf16 compute with fp8 storage (diffusers' storage float8_e4m3fn, compute bfloat16): the
  // narrowed GEMM weights take half of bf16's bytes, the skipped layers stay bf16.
  Engine bf16(world, EngineOptions{tiny(), DType::BF16, {}, {}});
  const auto bf16_want = bf16.run(request);
  EngineOptions bf16_fp8{tiny(), DType::BF16, {}, {}};
  bf16_fp8.transformer_storage = kernels::WeightStorage::Fp8E4M3;
  Engine narrow(world, bf16_fp8);
  const auto got = narrow.run(request);
  const double share = static_cast<double>(got.stats.weight_bytes) / bf16_want.stats.weight_bytes;
  std::printf("  fp8 storage, bf16 compute: %.3f of bf16's weight bytes\n", share);
  EXPECT_GT(share, 0.5);  // some layers stay bf16
  EXPECT_LT(share, 0.9);
  for (size_t i = 0; i < request.prompt.size(); ++i) {
    const double err = testing::relative_error(got.images[i].latents, bf16_want.images[i].latents);
    EXPECT_GT(err, 0.0) << i;
    EXPECT_LT(err, 2e-1) << i;
  }
}

TEST(Engine, RefusesWhatItCannotRunBeforeHeavyWork) {
  dist::SelfCommunicator world;
  auto expect_error = [](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      FAIL() << "accepted: expected an error with '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  parallel::ParallelConfig cfg3;
  cfg3.cfg_degree = 3;
  expect_error(
      [&] {
        Engine(world, EngineOptions{tiny(), DType::F32, cfg3, {}});
      },
      "cfg_degree must be 1 or 2");
  parallel::ParallelConfig two;
  two.context_parallel_config = parallel::ContextParallelConfig{1, 2, true, "p2p"};
  expect_error(
      [&] {
        Engine(world, EngineOptions{tiny(), DType::F32, two, {}});
      },
      "exceeds the world size (1 processes)");
  Engine engine(world, EngineOptions{tiny(), DType::F32, {}, {}});
  GenerationRequest r = small_request();
  r.negative_prompt = {"x", "y"};
  expect_error([&] { engine.run(r); }, "negative_prompt must be one prompt or one per prompt");
  r.negative_prompt.clear();
  r.prompt.clear();
  expect_error([&] { engine.run(r); }, "needs at least one prompt");
  r = small_request();
  r.num_inference_steps = 0;
  expect_error([&] { engine.run(r); }, "num_inference_steps must be between 1 and 10000");
  EXPECT_EQ(engine.pipeline().components().loaded().size(), 0u);  // nothing was loaded
  EXPECT_THROW(parse_output_type("png"), Error);
}

}  // namespace
}  // namespace paradiff::engine
