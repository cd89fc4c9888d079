// AutoencoderKL against diffusers' own outputs (tests/fixtures/vae, made by
// tools/make_fixtures/make_vae_scheduler_fixtures.py): decode, encode (mean, log-variance and a
// sample drawn with a seeded generator) and the latent scaling, for three tiny random VAEs
// (FLUX-like without quant convs; three blocks with quant convs and batch 2; no attention).
#include "paradiff/models/vae/autoencoder_kl.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "paradiff/core/threads.h"
#include "paradiff/io/safetensors.h"
#include "testing/test_util.h"

namespace paradiff::models::vae {
namespace {

std::string fixture(const std::string& name) {
  return testing::source_path("tests/fixtures/vae/" + name);
}

struct Case {
  std::string dir;
  SafetensorsFile inputs, outputs;
  explicit Case(const std::string& name)
      : dir(fixture(name)),
        inputs(SafetensorsFile::open(dir + "/inputs.safetensors")),
        outputs(SafetensorsFile::open(dir + "/outputs.safetensors")) {}
  Tensor in(const char* n) const { return inputs.read(n, DType::F32); }
  Tensor out(const char* n) const { return outputs.read(n, DType::F32); }
};

class VaeFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(VaeFixtureTest, DecodeMatchesDiffusers) {
  const Case c(GetParam());
  const auto vae = AutoencoderKL::from_pretrained(c.dir + "/vae");
  // The pipeline's scaling: latents / scaling_factor + shift_factor, as torch computes it.
  const Tensor z = vae.unscale_latents(c.in("transformer_latents"));
  EXPECT_LE(testing::relative_error(z, c.in("latents")), 1e-7);
  const Tensor expected = c.out("decoded");
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    const Tensor image = vae.decode(c.in("latents"));
    ASSERT_EQ(image.shape(), expected.shape());
    const double err = testing::relative_error(image, expected);
    std::printf("  %s decode, %d thread(s): relative error %.3g\n", GetParam().c_str(), threads,
                err);
    EXPECT_LE(err, 1e-4);
  }
  set_num_threads(2);
  // bf16 latents are accepted (converted exactly).
  const Tensor zb = c.in("latents").to(DType::BF16);
  EXPECT_EQ(vae.decode(zb).shape(), expected.shape());
  // Round trip of the scaling helpers.
  EXPECT_LE(testing::relative_error(vae.scale_latents(z), c.in("transformer_latents")), 1e-6);
}

TEST_P(VaeFixtureTest, EncodeMatchesDiffusers) {
  const Case c(GetParam());
  const auto vae = AutoencoderKL::from_pretrained(c.dir + "/vae");
  const auto dist = vae.encode_distribution(c.in("image"));
  const double mean_err = testing::relative_error(dist.mean, c.out("mean"));
  const double logvar_err = testing::relative_error(dist.logvar, c.out("logvar"));
  std::printf("  %s encode: mean %.3g, logvar %.3g\n", GetParam().c_str(), mean_err, logvar_err);
  EXPECT_LE(mean_err, 1e-4);
  EXPECT_LE(logvar_err, 1e-4);
  EXPECT_LE(testing::relative_error(vae.encode(c.in("image")), c.out("mean")), 1e-4);
  // latent_dist.sample(torch.Generator().manual_seed(7)).
  Generator g(7);
  EXPECT_LE(testing::relative_error(dist.sample(g), c.out("sample_seed7")), 1e-4);
}

TEST_P(VaeFixtureTest, HalvesLoadAlone) {
  const Case c(GetParam());
  const auto decoder = AutoencoderKL::from_pretrained(c.dir + "/vae", VaeParts::DecoderOnly);
  EXPECT_TRUE(decoder.has_decoder());
  EXPECT_FALSE(decoder.has_encoder());
  EXPECT_LE(testing::relative_error(decoder.decode(c.in("latents")), c.out("decoded")), 1e-4);
  try {
    decoder.encode(c.in("image"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("without its encoder"), std::string::npos) << e.what();
  }
  const auto encoder = AutoencoderKL::from_pretrained(c.dir + "/vae", VaeParts::EncoderOnly);
  EXPECT_FALSE(encoder.has_decoder());
  EXPECT_LE(testing::relative_error(encoder.encode(c.in("image")), c.out("mean")), 1e-4);
  EXPECT_THROW(encoder.decode(c.in("latents")), Error);
}

INSTANTIATE_TEST_SUITE_P(Diffusers, VaeFixtureTest,
                         ::testing::Values("tiny_flux", "quant_three_blocks", "no_attention"));

TEST(AutoencoderKL, ImagesToUint8FollowsDiffusersPostprocess) {
  Tensor images = Tensor::empty({1, 3, 1, 2}, DType::F32);
  // channel-major values: R = (-1, 1), G = (0, 2), B = (-0.5, 0.00392156)
  const float v[] = {-1.0f, 1.0f, 0.0f, 2.0f, -0.5f, 0.00392156f};
  std::copy(v, v + 6, images.data<float>());
  const auto bytes = images_to_uint8(images);
  // Pixel-major (H, W, C): (0, 128, 64), (255, 255, 128).
  const std::vector<uint8_t> want{0, 128, 64, 255, 255, 128};
  EXPECT_EQ(bytes, want);
}

TEST(AutoencoderKL, FluxSizedConfigRunsWithRandomWeights) {
  // FLUX.1's VAE config with random weights on a small latent: shapes only.
  const auto config = AutoencoderKLConfig::from_json(JsonConfig::parse(
      R"({"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
          "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
          "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
          "latent_channels": 16, "scaling_factor": 0.3611, "shift_factor": 0.1159,
          "use_quant_conv": false, "use_post_quant_conv": false})",
      "flux vae config"));
  EXPECT_EQ(config.downsample_factor(), 8);
  const auto vae = AutoencoderKL::with_random_weights(config, 1, VaeParts::DecoderOnly);
  const Tensor image = vae.decode(Tensor::zeros({1, 16, 2, 3}, DType::F32));
  EXPECT_EQ(image.shape(), (Shape{1, 3, 16, 24}));
  EXPECT_TRUE(testing::all_finite(image));
}

}  // namespace
}  // namespace paradiff::models::vae

namespace paradiff::models::vae {
namespace {

// Not a test: the decode time of FLUX.1's VAE (random weights) for a 256x256 image.
//   build/tests/models_tests --gtest_also_run_disabled_tests --gtest_filter='*DecodeTiming*'
// PARADIFF_VAE_TIMING_SIZE=<latent side> changes the size (32 -> 256x256 images).
TEST(AutoencoderKL, DISABLED_DecodeTiming) {
  const auto config = AutoencoderKLConfig::from_json(JsonConfig::parse(
      R"({"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
          "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
          "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
          "latent_channels": 16, "scaling_factor": 0.3611, "shift_factor": 0.1159,
          "use_quant_conv": false, "use_post_quant_conv": false})",
      "flux vae config"));
  const char* env = std::getenv("PARADIFF_VAE_TIMING_SIZE");
  const int64_t side = env ? std::atoll(env) : 32;
  const auto vae = AutoencoderKL::with_random_weights(config, 1, VaeParts::DecoderOnly);
  auto rng = testing::make_rng();
  const Tensor z = testing::random_normal({1, 16, side, side}, DType::F32, rng);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    vae.decode(z);  // first call: oneDNN primitives are created
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      const Tensor image = vae.decode(z);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      best = std::min(best, ms);
      std::printf("  decode 16x%lldx%lld -> %s, %d thread(s): %.0f ms\n",
                  static_cast<long long>(side), static_cast<long long>(side),
                  image.describe().c_str(), threads, ms);
    }
    std::printf("  best of 3, %d thread(s): %.0f ms\n", threads, best);
  }
  set_num_threads(2);
}

}  // namespace
}  // namespace paradiff::models::vae
