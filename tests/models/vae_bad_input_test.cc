// AutoencoderKL rejects what it cannot run, with messages that name the file, key or tensor:
// unsupported or inconsistent configs, missing / unexpected / misshapen weights, wrong latent and
// image shapes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "paradiff/io/safetensors.h"
#include "paradiff/io/safetensors_writer.h"
#include "paradiff/models/vae/autoencoder_kl.h"
#include "testing/temp_dir.h"
#include "testing/test_util.h"

namespace paradiff::models::vae {
namespace {

const std::string kFixture = testing::source_path("tests/fixtures/vae/tiny_flux/vae");

template <typename Fn>
void expect_error(Fn&& fn, const std::string& needle) {
  try {
    fn();
    FAIL() << "expected an error containing \"" << needle << "\"";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

void expect_config_error(const std::string& json, const std::string& needle) {
  expect_error([&] { AutoencoderKLConfig::from_json(JsonConfig::parse(json, "vae/config.json")); },
               needle);
}

TEST(VaeBadInput, RejectsUnsupportedOrInconsistentConfigs) {
  expect_config_error(R"({"down_block_types": ["AttnDownEncoderBlock2D"]})",
                      "down block type \"AttnDownEncoderBlock2D\" is not supported");
  expect_config_error(R"({"up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"]})",
                      "2 up_block_types for 1 block_out_channels");
  expect_config_error(R"({"act_fn": "gelu"})", "act_fn \"gelu\" is not supported");
  expect_config_error(R"({"block_out_channels": [48], "norm_num_groups": 32})",
                      "norm_num_groups (32) must divide every block_out_channels entry, not 48");
  expect_config_error(R"({"latents_mean": [0.1, 0.2, 0.3, 0.4]})", "latents_mean");
  expect_config_error(R"({"latent_channels": "16"})", "'latent_channels'");
  expect_config_error(R"({"scaling_factor": 0})", "scaling_factor must be a non-zero number");
  expect_config_error(R"({"block_out_channels": []})", "block_out_channels must list");
  expect_config_error(R"({"use_quant_conv": "no"})", "'use_quant_conv'");
}

// A copy of the fixture folder whose weights file is rewritten by `edit`.
template <typename Edit>
std::string edited_copy(const testing::TempDir& dir, Edit&& edit) {
  const std::string folder = dir.path() + "/vae";
  std::filesystem::create_directories(folder);
  std::filesystem::copy_file(kFixture + "/config.json", folder + "/config.json");
  const auto file = SafetensorsFile::open(kFixture + "/diffusion_pytorch_model.safetensors");
  std::map<std::string, Tensor> tensors;
  for (const auto& name : file.names()) tensors[name] = file.read(name, DType::F32);
  edit(tensors);
  write_safetensors(folder + "/diffusion_pytorch_model.safetensors", tensors);
  return folder;
}

TEST(VaeBadInput, ReportsWeightProblemsByName) {
  {
    testing::TempDir dir;
    const auto folder = edited_copy(
        dir, [](auto& t) { t.erase("decoder.up_blocks.1.resnets.0.conv_shortcut.weight"); });
    expect_error([&] { AutoencoderKL::from_pretrained(folder); },
                 "missing tensor 'decoder.up_blocks.1.resnets.0.conv_shortcut.weight'");
    // The encoder alone does not need it.
    EXPECT_TRUE(AutoencoderKL::from_pretrained(folder, VaeParts::EncoderOnly).has_encoder());
  }
  {
    testing::TempDir dir;
    const auto folder = edited_copy(
        dir, [](auto& t) { t["decoder.extra.weight"] = Tensor::zeros({3}, DType::F32); });
    expect_error([&] { AutoencoderKL::from_pretrained(folder); }, "'decoder.extra.weight'");
  }
  {
    testing::TempDir dir;
    const auto folder = edited_copy(dir, [](auto& t) {
      t["decoder.conv_in.weight"] = Tensor::zeros({32, 16, 3, 1}, DType::F32);
    });
    expect_error([&] { AutoencoderKL::from_pretrained(folder); },
                 "tensor 'decoder.conv_in.weight' has shape [32, 16, 3, 1], the config implies "
                 "[32, 16, 3, 3]");
  }
  {
    // bf16 weights (as real FLUX checkpoints store them) load and are converted to f32.
    testing::TempDir dir;
    const auto folder = edited_copy(dir, [](auto& t) {
      for (auto& [name, tensor] : t) tensor = tensor.to(DType::BF16);
    });
    EXPECT_TRUE(AutoencoderKL::from_pretrained(folder).has_decoder());
  }
  expect_error([] { AutoencoderKL::from_pretrained("/no/such/vae"); }, "does not exist");
  {
    testing::TempDir dir;
    std::filesystem::copy_file(kFixture + "/diffusion_pytorch_model.safetensors",
                               dir.file("diffusion_pytorch_model.safetensors"));
    std::ofstream(dir.file("config.json")) << R"({"_class_name": "AutoencoderTiny"})";
    expect_error([&] { AutoencoderKL::from_pretrained(dir.path()); },
                 "_class_name is \"AutoencoderTiny\"");
  }
}

TEST(VaeBadInput, RejectsWrongLatentAndImageShapes) {
  const auto vae = AutoencoderKL::from_pretrained(kFixture);
  expect_error(
      [&] {
        vae.decode(Tensor::zeros({1, 4, 8, 8}, DType::F32));
      },
      "latents must be (B, 16, h, w), got f32[1, 4, 8, 8]");
  expect_error(
      [&] {
        vae.decode(Tensor::zeros({1, 16, 8}, DType::F32));
      },
      "latents must be (B, 16, h, w)");
  expect_error(
      [&] {
        vae.decode(Tensor::zeros({1, 20, 64}, DType::F32));
      },
      "look like packed FLUX latents");
  expect_error([&] { vae.decode(Tensor::zeros({1, 16, 2, 2}, DType::I64)); }, "floating-point");
  expect_error([&] { vae.decode(Tensor()); }, "floating-point");
  expect_error(
      [&] {
        vae.encode(Tensor::zeros({1, 4, 8, 8}, DType::F32));
      },
      "images must be (B, 3, H, W), got f32[1, 4, 8, 8]");
  expect_error([&] { images_to_uint8(Tensor::zeros({3, 8, 8}, DType::F32)); }, "(B, C, H, W)");
}

}  // namespace
}  // namespace paradiff::models::vae
