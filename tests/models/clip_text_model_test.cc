// CLIPTextModel against transformers' outputs (tests/fixtures/text_encoders, made by
// tools/make_fixtures/make_text_encoder_fixtures.py) in fp32 and bf16 compute: FLUX.1's kind
// (quick_gelu, legacy eos_token_id 2, "text_model." names) and another (gelu, real EOS id, bf16
// weights, names of transformers 5); then what loading and forward must refuse.
#include "paradiff/models/clip/clip_text_model.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "paradiff/io/safetensors.h"
#include "paradiff/io/safetensors_writer.h"
#include "paradiff/models/tokenizers/clip_tokenizer.h"
#include "testing/temp_dir.h"
#include "testing/test_util.h"

namespace paradiff::models::clip {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) {
  return testing::source_path("tests/fixtures/text_encoders/" + name);
}

Tensor expected(const std::string& name, DType dtype = DType::F32) {
  return SafetensorsFile::open(fixture("expected.safetensors")).read(name, dtype);
}

class ClipModelFixture : public ::testing::TestWithParam<std::tuple<std::string, DType>> {};

TEST_P(ClipModelFixture, MatchesTransformers) {
  const auto [name, compute] = GetParam();
  const auto model = CLIPTextModel::from_pretrained(fixture(name + "/text_encoder"), compute);
  const double tol = compute == DType::F32 ? 1e-4 : 2e-2;
  // The fixture's prompts through the fixture's tokenizer: FluxPipeline's pooled prompt embeds.
  const Tensor ids = expected("clip_tiny.input_ids", DType::I64);
  const CLIPTextModelOutput out = model.forward(ids);
  const Tensor want_pooled = expected(name + ".pooler_output");
  ASSERT_EQ(out.pooler_output.shape(), want_pooled.shape());
  const double err = testing::relative_error(out.pooler_output, want_pooled);
  std::printf("  %s, %s compute: pooled relative error %.3g\n", name.c_str(),
              std::string(dtype_name(compute)).c_str(), err);
  EXPECT_LE(err, tol);
  // Hand-made ids where argmax and first-EOS pick different rows, and every position.
  const CLIPTextModelOutput custom = model.forward(expected("clip_custom.input_ids", DType::I64));
  EXPECT_LE(testing::relative_error(custom.pooler_output, expected(name + ".custom_pooler_output")),
            tol);
  EXPECT_LE(testing::relative_error(custom.last_hidden_state,
                                    expected(name + ".custom_last_hidden_state")),
            tol);
}

INSTANTIATE_TEST_SUITE_P(Transformers, ClipModelFixture,
                         ::testing::Combine(::testing::Values("clip_tiny", "clip_tiny_gelu"),
                                            ::testing::Values(DType::F32, DType::BF16)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" +
                                  std::string(dtype_name(std::get<1>(info.param)));
                         });

TEST(CLIPTextModel, TokenizerToPooledEmbedsLikeFluxPipeline) {
  const auto tok = tokenizers::CLIPTokenizer::from_pretrained(fixture("clip_tiny/tokenizer"));
  const auto model = CLIPTextModel::from_pretrained(fixture("clip_tiny/text_encoder"), DType::F32);
  EXPECT_TRUE(model.config().legacy_pooling());
  const Tensor ids = tok.encode_batch({"a photo of an astronaut riding a horse on mars"});
  const Tensor pooled = model.forward(ids).pooler_output;
  EXPECT_LE(testing::relative_error(pooled, expected("clip_tiny.pooler_output").slice(0, 1)), 1e-4);
}

TEST(CLIPTextModel, RandomWeightsRunAndStayFinite) {
  CLIPTextConfig c;
  c.vocab_size = 100, c.hidden_size = 16, c.intermediate_size = 20, c.num_hidden_layers = 2;
  c.num_attention_heads = 2, c.max_position_embeddings = 10;
  for (DType compute : {DType::F32, DType::BF16}) {
    const auto model = CLIPTextModel::with_random_weights(c, compute, 7);
    Tensor ids = Tensor::zeros({2, 10}, DType::I64);
    ids.data<int64_t>()[3] = 99;
    const auto out = model.forward(ids);
    EXPECT_EQ(out.last_hidden_state.shape(), Shape({2, 10, 16}));
    EXPECT_TRUE(testing::all_finite(out.last_hidden_state));
  }
}

// A copy of a fixture's text_encoder folder whose config and weights a test may change.
class ClipModelBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = dir_.file("text_encoder");
    fs::copy(fixture("clip_tiny/text_encoder"), folder_);
    std::ifstream in(folder_ + "/config.json");
    config_ = nlohmann::json::parse(in);
  }
  void write_config() { std::ofstream(folder_ + "/config.json") << config_.dump(2); }
  std::map<std::string, Tensor> weights() {
    const auto file = SafetensorsFile::open(folder_ + "/model.safetensors");
    std::map<std::string, Tensor> out;
    for (const auto& name : file.names()) out[name] = file.read(name, DType::F32).clone();
    return out;
  }
  void write_weights(const std::map<std::string, Tensor>& w) {
    write_safetensors(folder_ + "/model.safetensors", w);
  }
  void expect_load_error(const std::string& needle) {
    try {
      CLIPTextModel::from_pretrained(folder_, DType::F32);
      FAIL() << "loaded, expected an error containing: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
  testing::TempDir dir_;
  std::string folder_;
  nlohmann::json config_;
};

TEST_F(ClipModelBadInput, MissingFolderConfigOrWeights) {
  fs::remove(folder_ + "/config.json");
  expect_load_error("has no config.json");
  fs::remove_all(folder_);
  expect_load_error("does not exist");
  fs::create_directory(folder_);
  write_config();
  expect_load_error("model.safetensors");
}

TEST_F(ClipModelBadInput, ConfigWithWrongTypesAndValues) {
  config_["hidden_size"] = "32";
  write_config();
  expect_load_error("'hidden_size' must be an integer");
  config_["hidden_size"] = 32;
  config_["num_attention_heads"] = 5;
  write_config();
  expect_load_error("hidden_size (32) must be a multiple of num_attention_heads (5)");
  config_["num_attention_heads"] = 4;
  config_["hidden_act"] = "swiglu";
  write_config();
  expect_load_error("'hidden_act' must be one of quick_gelu, gelu");
  config_["hidden_act"] = "quick_gelu";
  config_["eos_token_id"] = nlohmann::json::array({2, 3});
  write_config();
  expect_load_error("'eos_token_id' must be an integer");
  config_["eos_token_id"] = 2;
  config_["text_config"] = nlohmann::json::object();
  write_config();
  expect_load_error("this is a full CLIPModel config");
}

TEST_F(ClipModelBadInput, WeightsThatDoNotMatchTheConfig) {
  config_["num_hidden_layers"] = 3;
  write_config();
  expect_load_error("missing tensor 'text_model.encoder.layers.2.layer_norm1.weight'");
  config_["num_hidden_layers"] = 2;
  config_["intermediate_size"] = 65;
  write_config();
  expect_load_error(
      "tensor 'text_model.encoder.layers.0.mlp.fc1.weight' has shape [64, 32], "
      "the config implies [65, 32]");
  config_["intermediate_size"] = 64;
  write_config();
  auto w = weights();
  w["text_model.text_projection.weight"] = Tensor::zeros({32, 32}, DType::F32);
  write_weights(w);
  expect_load_error(
      "1 unexpected tensor(s) that the model does not use: "
      "'text_model.text_projection.weight'");
  // An old checkpoint's position_ids buffer is accepted.
  w.erase("text_model.text_projection.weight");
  Tensor pos = Tensor::empty({1, 77}, DType::I64);
  for (int64_t i = 0; i < 77; ++i) pos.data<int64_t>()[i] = i;
  w["text_model.embeddings.position_ids"] = pos;
  write_weights(w);
  EXPECT_NO_THROW(CLIPTextModel::from_pretrained(folder_, DType::F32));
}

TEST(CLIPTextModel, RefusesBadInputIds) {
  const auto model = CLIPTextModel::from_pretrained(fixture("clip_tiny/text_encoder"), DType::F32);
  auto expect_error = [&](const Tensor& ids, const std::string& needle) {
    try {
      model.forward(ids);
      FAIL() << "ran, expected an error containing: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(Tensor::zeros({1, 78}, DType::I64),
               "has 78 tokens; the model takes 1 to "
               "max_position_embeddings = 77");
  expect_error(Tensor::zeros({1, 5}, DType::F32), "must be i64 (B, S)");
  Tensor ids = Tensor::zeros({2, 5}, DType::I64);
  ids.data<int64_t>()[7] = 2520;
  expect_error(ids, "input_ids[1, 2] = 2520 is outside the vocabulary [0, 2520)");
}

}  // namespace
}  // namespace paradiff::models::clip
