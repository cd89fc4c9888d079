// What FluxTransformer2DModel must refuse, and the messages it must refuse it with: a folder
// without config.json, wrong config types and values, weights that do not match the config,
// inputs of the wrong shape.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "paradiff/io/safetensors.h"
#include "paradiff/io/safetensors_writer.h"
#include "paradiff/models/flux/flux_transformer.h"
#include "testing/temp_dir.h"
#include "testing/test_util.h"

namespace paradiff::models::flux {
namespace {

namespace fs = std::filesystem;

const std::string kFixture = "tests/fixtures/flux_transformer/tiny_noguidance";

// A copy of the fixture's transformer folder whose config and weights a test may change.
class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = dir_.file("transformer");
    fs::copy(testing::source_path(kFixture + "/transformer"), folder_);
    std::ifstream in(folder_ + "/config.json");
    config_ = nlohmann::json::parse(in);
  }
  void write_config() { std::ofstream(folder_ + "/config.json") << config_.dump(2); }
  // The weights as a name -> tensor map (copies), for tests that change them.
  std::map<std::string, Tensor> weights() {
    const auto file = SafetensorsFile::open(folder_ + "/diffusion_pytorch_model.safetensors");
    std::map<std::string, Tensor> out;
    for (const auto& name : file.names()) out[name] = file.read(name, DType::F32).clone();
    return out;
  }
  void write_weights(const std::map<std::string, Tensor>& w) {
    write_safetensors(folder_ + "/diffusion_pytorch_model.safetensors", w);
  }
  // Loading must fail with a message containing `needle`.
  void expect_load_error(const std::string& needle) {
    try {
      FluxTransformer2DModel::from_pretrained(folder_, DType::F32);
      FAIL() << "loaded, expected an error containing: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }

  testing::TempDir dir_;
  std::string folder_;
  nlohmann::json config_;
};

TEST_F(BadInput, FolderWithoutConfig) {
  fs::remove(folder_ + "/config.json");
  expect_load_error("has no config.json");
}

TEST_F(BadInput, MissingFolder) {
  fs::remove_all(folder_);
  expect_load_error("does not exist");
}

TEST_F(BadInput, ConfigWrongTypeAndRange) {
  config_["num_layers"] = "two";
  write_config();
  expect_load_error("'num_layers' must be an integer");
  config_["num_layers"] = -1;
  write_config();
  expect_load_error("num_layers");
  config_["num_layers"] = 2;
  config_["axes_dims_rope"] = {4, 4, 4};
  write_config();
  expect_load_error("axes_dims_rope must sum to attention_head_dim (16), they sum to 12");
  config_["axes_dims_rope"] = {4, 6, 6};
  config_["guidance_embeds"] = "yes";
  write_config();
  expect_load_error("guidance_embeds");
}

TEST_F(BadInput, UnknownAndUnderscoreKeysAreIgnoredAsUpstream) {
  config_["_class_name"] = "FluxTransformer2DModel";
  config_["some_future_option"] = {{"a", 1}};
  write_config();
  EXPECT_NO_THROW(FluxTransformer2DModel::from_pretrained(folder_, DType::F32));
}

TEST_F(BadInput, WeightsThatDoNotMatchTheConfig) {
  // More layers in the config than in the weights: a missing tensor, named.
  config_["num_single_layers"] = config_["num_single_layers"].get<int>() + 1;
  write_config();
  expect_load_error("missing tensor 'single_transformer_blocks.");
  config_["num_single_layers"] = config_["num_single_layers"].get<int>() - 2;
  write_config();
  expect_load_error(
      "unexpected tensor(s) that the model does not use: 'single_transformer_blocks.");
}

TEST_F(BadInput, WronglyShapedAndMissingTensors) {
  auto w = weights();
  w["proj_out.bias"] = Tensor::zeros({5}, DType::F32);
  write_weights(w);
  expect_load_error("tensor 'proj_out.bias' has shape [5], the config implies");
  w = weights();
  w.erase("x_embedder.weight");
  write_weights(w);
  expect_load_error("missing tensor 'x_embedder.weight'");
}

// float8 e5m2 weights (safetensors F8_E5M2) are not read: refused naming the tensor and the dtype
// (F8_E4M3 ones load: flux_transformer_test.cc, LoadsAnFp8CheckpointExactly).
TEST_F(BadInput, Fp8E5M2WeightsAreRefusedByName) {
  const auto w = weights();
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, t] : w) {
    const bool e5m2 = name == "x_embedder.weight";
    const std::string bytes = e5m2
                                  ? std::string(static_cast<size_t>(t.numel()), '\x3c')
                                  : std::string(static_cast<const char*>(t.raw_data()), t.nbytes());
    header[name] = {{"dtype", e5m2 ? "F8_E5M2" : "F32"},
                    {"shape", t.shape().to_vector()},
                    {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data += bytes;
  }
  std::string text = header.dump();
  text += std::string((8 - text.size() % 8) % 8, ' ');
  const uint64_t length = text.size();
  std::ofstream out(folder_ + "/diffusion_pytorch_model.safetensors", std::ios::binary);
  out.write(reinterpret_cast<const char*>(&length), 8);
  out << text << data;
  out.close();
  expect_load_error(
      "tensor 'x_embedder.weight' is stored as F8_E5M2; a floating-point parameter must be F32, "
      "BF16, F16 or F8_E4M3");
}

TEST_F(BadInput, InputsOfTheWrongShape) {
  const auto model = FluxTransformer2DModel::from_pretrained(folder_, DType::F32);
  const auto file = SafetensorsFile::open(testing::source_path(kFixture + "/inputs.safetensors"));
  auto get = [&](const char* name) { return file.read(name, DType::F32); };
  FluxTransformerInputs good{get("hidden_states"),
                             get("encoder_hidden_states"),
                             get("pooled_projections"),
                             get("timestep"),
                             get("img_ids"),
                             get("txt_ids"),
                             Tensor()};
  EXPECT_NO_THROW(model.validate_inputs(good));
  auto expect_error = [&](FluxTransformerInputs in, const std::string& needle) {
    try {
      model.forward(in);
      FAIL() << "expected an error containing: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto in = good;
  in.hidden_states = Tensor::zeros({1, 35, 3}, DType::F32);
  expect_error(in, "hidden_states must be (B, S_img, ");
  in = good;
  in.img_ids = Tensor::zeros({34, 3}, DType::F32);
  expect_error(in, "img_ids: expected shape [35, 3]");
  in = good;
  in.guidance = Tensor::zeros({1}, DType::F32);
  expect_error(in, "no guidance embeddings");
  in = good;
  in.timestep = Tensor::zeros({1}, DType::I64);
  expect_error(in, "'timestep' must be floating point");
  in = good;
  in.pooled_projections = Tensor();
  expect_error(in, "'pooled_projections' is missing");
}

}  // namespace
}  // namespace paradiff::models::flux
