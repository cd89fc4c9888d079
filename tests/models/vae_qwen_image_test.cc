// AutoencoderKLQwenImage against diffusers' own outputs (tests/fixtures/qwen_image_vae, made by
// tools/make_fixtures/make_qwen_image_vae_fixtures.py): single-frame decode, encode (mean) and
// the pipeline's latent (un)normalisation, for two tiny random VAEs (diffusers' pipeline-test
// layout; an odd one: non-square, batch 2, other temporal flags). Then what it must refuse:
// bad configs, misnamed or misshapen weights, wrong input shapes.
#include "paradiff/models/vae_qwen_image/autoencoder_kl_qwen_image.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "paradiff/core/threads.h"
#include "paradiff/io/safetensors.h"
#include "paradiff/io/safetensors_writer.h"
#include "testing/temp_dir.h"
#include "testing/test_util.h"

namespace paradiff::models::vae_qwen_image {
namespace {

std::string fixture(const std::string& name) {
  return testing::source_path("tests/fixtures/qwen_image_vae/" + name);
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

// (B, C, 1, H, W) -> (B, C, H, W): diffusers' single frame as this VAE returns it.
Tensor drop_frame(const Tensor& t) {
  return t.reshape({t.dim(0), t.dim(1), t.dim(3), t.dim(4)});
}

template <typename Fn>
void expect_error(Fn&& fn, const std::string& needle) {
  try {
    fn();
    FAIL() << "expected an error containing \"" << needle << "\"";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

class QwenImageVaeFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(QwenImageVaeFixtureTest, DecodeMatchesDiffusers) {
  const Case c(GetParam());
  const auto vae = AutoencoderKLQwenImage::from_pretrained(c.dir + "/vae");
  // QwenImagePipeline's un-normalisation, with torch's float32 roundings.
  const Tensor z = vae.unnormalize_latents(c.in("latents"));
  EXPECT_EQ(z.shape(), c.in("z").shape());
  EXPECT_LE(testing::relative_error(z, c.in("z")), 1e-7);
  const Tensor expected = drop_frame(c.out("decoded"));
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    const Tensor image = vae.decode(c.in("z"));
    ASSERT_EQ(image.shape(), expected.shape());
    const double err = testing::relative_error(image, expected);
    std::printf("  %s decode, %d thread(s): relative error %.3g\n", GetParam().c_str(), threads,
                err);
    EXPECT_LE(err, 1e-4);
  }
  set_num_threads(2);
  // The same latents without the frame axis, and in bf16 (converted exactly).
  EXPECT_LE(testing::relative_error(vae.decode(drop_frame(c.in("z"))), expected), 1e-4);
  EXPECT_EQ(vae.decode(c.in("z").to(DType::BF16)).shape(), expected.shape());
}

TEST_P(QwenImageVaeFixtureTest, EncodeMatchesDiffusers) {
  const Case c(GetParam());
  const auto vae = AutoencoderKLQwenImage::from_pretrained(c.dir + "/vae");
  const Tensor expected = drop_frame(c.out("mean"));
  const auto dist = vae.encode_distribution(c.in("image"));
  ASSERT_EQ(dist.mean.shape(), expected.shape());
  const double err = testing::relative_error(dist.mean, expected);
  std::printf("  %s encode mean: relative error %.3g\n", GetParam().c_str(), err);
  EXPECT_LE(err, 1e-4);
  EXPECT_EQ(dist.logvar.shape(), expected.shape());
  EXPECT_TRUE(testing::all_finite(dist.logvar));
  EXPECT_LE(testing::relative_error(vae.encode(drop_frame(c.in("image"))), expected), 1e-4);
  // The img2img pipeline's normalisation of encoded latents, and the round trip.
  const Tensor normalized = vae.normalize_latents(c.out("mean"));
  EXPECT_LE(testing::relative_error(normalized, c.out("normalized")), 1e-7);
  EXPECT_LE(testing::relative_error(vae.unnormalize_latents(normalized), c.out("mean")), 1e-6);
}

TEST_P(QwenImageVaeFixtureTest, HalvesLoadAlone) {
  const Case c(GetParam());
  const auto decoder =
      AutoencoderKLQwenImage::from_pretrained(c.dir + "/vae", VaeParts::DecoderOnly);
  EXPECT_TRUE(decoder.has_decoder());
  EXPECT_FALSE(decoder.has_encoder());
  EXPECT_LE(testing::relative_error(decoder.decode(c.in("z")), drop_frame(c.out("decoded"))), 1e-4);
  expect_error([&] { decoder.encode(c.in("image")); }, "without its encoder");
  const auto encoder =
      AutoencoderKLQwenImage::from_pretrained(c.dir + "/vae", VaeParts::EncoderOnly);
  EXPECT_FALSE(encoder.has_decoder());
  EXPECT_LE(testing::relative_error(encoder.encode(c.in("image")), drop_frame(c.out("mean"))),
            1e-4);
  expect_error([&] { encoder.decode(c.in("z")); }, "without its decoder");
}

INSTANTIATE_TEST_SUITE_P(Diffusers, QwenImageVaeFixtureTest,
                         ::testing::Values("tests_like", "odd_nonsquare"));

TEST(AutoencoderKLQwenImage, DefaultsAreQwenImagesVae) {
  const auto config = AutoencoderKLQwenImageConfig::from_json(
      JsonConfig::parse(R"({"_class_name": "AutoencoderKLQwenImage"})", "vae/config.json"));
  EXPECT_EQ(config.spatial_compression_ratio(), 8);
  EXPECT_EQ(config.decoder_dims(), (std::vector<int64_t>{384, 384, 384, 192, 96}));
  EXPECT_EQ(config.encoder_dims(), (std::vector<int64_t>{96, 96, 192, 384, 384}));
  EXPECT_EQ(config.latents_std.size(), 16u);
  // Qwen-Image's VAE with random weights on a small latent: shapes and finiteness only.
  const auto vae = AutoencoderKLQwenImage::with_random_weights(config, 1, VaeParts::DecoderOnly);
  const Tensor image = vae.decode(Tensor::zeros({1, 16, 1, 2, 3}, DType::F32));
  EXPECT_EQ(image.shape(), (Shape{1, 3, 16, 24}));
  EXPECT_TRUE(testing::all_finite(image));
}

void expect_config_error(const std::string& json, const std::string& needle) {
  expect_error(
      [&] { AutoencoderKLQwenImageConfig::from_json(JsonConfig::parse(json, "vae/config.json")); },
      needle);
}

TEST(AutoencoderKLQwenImage, RejectsBadConfigs) {
  expect_config_error(R"({"z_dim": 4})",
                      "vae/config.json: latents_mean has 16 entries, z_dim is 4");
  expect_config_error(R"({"z_dim": 2, "latents_mean": [0, 0], "latents_std": [1]})",
                      "latents_std has 1 entries, z_dim is 2");
  expect_config_error(R"({"z_dim": 2, "latents_mean": [0, 0], "latents_std": [1, 0]})",
                      "latents_std entries must be finite and non-zero, got 0");
  expect_config_error(R"({"temperal_downsample": [false, true]})",
                      "temperal_downsample has 2 entries; 4 dim_mult entries need 3");
  expect_config_error(R"({"temperal_downsample": [0, 1, 1]})",
                      "config key 'temperal_downsample' must be a list of booleans, got [0,1,1]");
  expect_config_error(R"({"temperal_downsample": true})",
                      "'temperal_downsample' must be a list of booleans");
  expect_config_error(R"({"dim_mult": [], "temperal_downsample": []})",
                      "dim_mult must list 1 to 16 multipliers, got 0");
  expect_config_error(R"({"dim_mult": [1, 0], "temperal_downsample": [false]})",
                      "dim_mult entries must be positive");
  expect_config_error(R"({"base_dim": 0})", "'base_dim'");
  expect_config_error(R"({"base_dim": "96"})", "'base_dim'");
  expect_config_error(R"({"num_res_blocks": 0})", "'num_res_blocks'");
  expect_config_error(R"({"dropout": 1.5})", "'dropout'");
  expect_config_error(R"({"base_dim": 1, "dim_mult": [1, 1], "temperal_downsample": [true]})",
                      "decoder stage 0 has 1 channels, too few to halve");
  expect_config_error(R"({"latents_mean": "zero"})", "'latents_mean'");
}

// The tests_like fixture folder with its weights rewritten by `edit`.
const std::string kTiny = fixture("tests_like/vae");

template <typename Edit>
std::string edited_copy(const testing::TempDir& dir, Edit&& edit) {
  const std::string folder = dir.path() + "/vae";
  std::filesystem::create_directories(folder);
  std::filesystem::copy_file(kTiny + "/config.json", folder + "/config.json");
  const auto file = SafetensorsFile::open(kTiny + "/diffusion_pytorch_model.safetensors");
  std::map<std::string, Tensor> tensors;
  for (const auto& name : file.names()) tensors[name] = file.read(name, DType::F32);
  edit(tensors);
  write_safetensors(folder + "/diffusion_pytorch_model.safetensors", tensors);
  return folder;
}

TEST(AutoencoderKLQwenImage, ReportsWeightProblemsByName) {
  {
    // The unused time_conv is still required (and checked) like any other tensor.
    testing::TempDir dir;
    const auto folder = edited_copy(
        dir, [](auto& t) { t.erase("decoder.up_blocks.0.upsamplers.0.time_conv.weight"); });
    expect_error([&] { AutoencoderKLQwenImage::from_pretrained(folder); },
                 "missing tensor 'decoder.up_blocks.0.upsamplers.0.time_conv.weight'");
    EXPECT_TRUE(
        AutoencoderKLQwenImage::from_pretrained(folder, VaeParts::EncoderOnly).has_encoder());
  }
  {
    testing::TempDir dir;
    const auto folder = edited_copy(dir, [](auto& t) {
      t["encoder.down_blocks.3.time_conv.weight"] = Tensor::zeros({12, 12, 3, 3, 3}, DType::F32);
    });
    expect_error([&] { AutoencoderKLQwenImage::from_pretrained(folder); },
                 "tensor 'encoder.down_blocks.3.time_conv.weight' has shape [12, 12, 3, 3, 3], "
                 "the config implies [12, 12, 3, 1, 1]");
  }
  {
    // A 2-D conv weight where the checkpoint has causal 3-D ones.
    testing::TempDir dir;
    const auto folder = edited_copy(dir, [](auto& t) {
      t["decoder.conv_in.weight"] = Tensor::zeros({24, 4, 3, 3}, DType::F32);
    });
    expect_error([&] { AutoencoderKLQwenImage::from_pretrained(folder); },
                 "tensor 'decoder.conv_in.weight' has shape [24, 4, 3, 3], the config implies "
                 "[24, 4, 3, 3, 3]");
  }
  {
    testing::TempDir dir;
    const auto folder = edited_copy(
        dir, [](auto& t) { t["decoder.extra.gamma"] = Tensor::zeros({3}, DType::F32); });
    expect_error([&] { AutoencoderKLQwenImage::from_pretrained(folder); }, "'decoder.extra.gamma'");
  }
  expect_error([] { AutoencoderKLQwenImage::from_pretrained("/no/such/vae"); }, "does not exist");
  {
    testing::TempDir dir;
    std::filesystem::copy_file(kTiny + "/diffusion_pytorch_model.safetensors",
                               dir.file("diffusion_pytorch_model.safetensors"));
    std::ofstream(dir.file("config.json")) << R"({"_class_name": "AutoencoderKL"})";
    expect_error([&] { AutoencoderKLQwenImage::from_pretrained(dir.path()); },
                 "_class_name is \"AutoencoderKL\", expected \"AutoencoderKLQwenImage\"");
  }
}

TEST(AutoencoderKLQwenImage, EncoderAttentionIsRefusedAsInDiffusers) {
  // attn_scales [1.0]: attention after the first stage's residual blocks. diffusers builds it but
  // its encoder fails to call it; decode (which ignores attn_scales) still works.
  const auto config = AutoencoderKLQwenImageConfig::from_json(JsonConfig::parse(
      R"({"base_dim": 4, "z_dim": 2, "dim_mult": [1, 2], "num_res_blocks": 1,
          "attn_scales": [1.0], "temperal_downsample": [true],
          "latents_mean": [0, 0], "latents_std": [1, 1]})",
      "vae/config.json"));
  const auto vae = AutoencoderKLQwenImage::with_random_weights(config, 3);
  EXPECT_EQ(vae.decode(Tensor::zeros({1, 2, 3, 3}, DType::F32)).shape(), (Shape{1, 3, 6, 6}));
  expect_error(
      [&] {
        vae.encode(Tensor::zeros({1, 3, 8, 8}, DType::F32));
      },
      "attn_scales puts attention blocks in the encoder's down_blocks");
}

TEST(AutoencoderKLQwenImage, RejectsWrongLatentAndImageShapes) {
  const auto vae = AutoencoderKLQwenImage::from_pretrained(kTiny);
  expect_error(
      [&] {
        vae.decode(Tensor::zeros({1, 16, 1, 8, 8}, DType::F32));
      },
      "decode: input must be (B, 4, 1, h, w) or (B, 4, h, w), got f32[1, 16, 1, 8, 8]");
  expect_error(
      [&] {
        vae.decode(Tensor::zeros({1, 4, 3, 8, 8}, DType::F32));
      },
      "has 3 frames; only single images (one frame) are supported");
  expect_error([&] { vae.decode(Tensor::zeros({1, 4, 8}, DType::F32)); }, "(B, 4, h, w)");
  expect_error(
      [&] {
        vae.decode(Tensor::zeros({1, 9, 16}, DType::F32));
      },
      "look like packed Qwen-Image latents");
  expect_error([&] { vae.decode(Tensor::zeros({1, 4, 2, 2}, DType::I64)); }, "floating-point");
  expect_error([&] { vae.decode(Tensor()); }, "floating-point");
  expect_error(
      [&] {
        vae.encode(Tensor::zeros({1, 4, 1, 8, 8}, DType::F32));
      },
      "encode: input must be (B, 3, 1, H, W) or (B, 3, H, W), got f32[1, 4, 1, 8, 8]");
  expect_error(
      [&] {
        vae.encode(Tensor::zeros({1, 3, 3, 2}, DType::F32));
      },
      "are too small for 2 downsampling stages");
  expect_error(
      [&] {
        vae.unnormalize_latents(Tensor::zeros({1, 5, 1, 2, 2}, DType::F32));
      },
      "unnormalize_latents: latents must be (B, 4, 1, h, w) or (B, 4, h, w)");
  expect_error(
      [&] {
        vae.normalize_latents(Tensor::zeros({4, 2, 2}, DType::F32));
      },
      "normalize_latents: latents must be");
}

}  // namespace
}  // namespace paradiff::models::vae_qwen_image

namespace paradiff::models::vae_qwen_image {
namespace {

// Not a test: the decode time of Qwen-Image's VAE (random weights) for a 256x256 image.
//   build/tests/models_tests --gtest_also_run_disabled_tests --gtest_filter='*QwenImageVaeTiming*'
// PARADIFF_VAE_TIMING_SIZE=<latent side> changes the size (32 -> 256x256 images).
TEST(AutoencoderKLQwenImage, DISABLED_QwenImageVaeTiming) {
  const AutoencoderKLQwenImageConfig config;  // diffusers' defaults: Qwen/Qwen-Image's VAE
  const char* env = std::getenv("PARADIFF_VAE_TIMING_SIZE");
  const int64_t side = env ? std::atoll(env) : 32;
  const auto vae = AutoencoderKLQwenImage::with_random_weights(config, 1, VaeParts::DecoderOnly);
  auto rng = testing::make_rng();
  const Tensor z = testing::random_normal({1, 16, 1, side, side}, DType::F32, rng);
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
}  // namespace paradiff::models::vae_qwen_image
