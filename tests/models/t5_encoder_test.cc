// T5EncoderModel against transformers' outputs (tests/fixtures/text_encoders, made by
// tools/make_fixtures/make_text_encoder_fixtures.py) in fp32 and bf16 compute: T5 v1.1's kind
// (gated-gelu, as FLUX.1's text_encoder_2) at 32 and 512 tokens, and a relu one with bf16
// weights; the relative position buckets against PyTorch's; what loading must accept and refuse.
#include "paradiff/models/t5/t5_encoder_model.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "paradiff/io/safetensors.h"
#include "paradiff/io/safetensors_writer.h"
#include "paradiff/models/tokenizers/t5_tokenizer.h"
#include "testing/temp_dir.h"
#include "testing/test_util.h"

namespace paradiff::models::t5 {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) {
  return testing::source_path("tests/fixtures/text_encoders/" + name);
}

Tensor expected(const std::string& name, DType dtype = DType::F32) {
  return SafetensorsFile::open(fixture("expected.safetensors")).read(name, dtype);
}

class T5ModelFixture : public ::testing::TestWithParam<std::tuple<std::string, DType>> {};

TEST_P(T5ModelFixture, MatchesTransformers) {
  const auto [name, compute] = GetParam();
  const auto model = T5EncoderModel::from_pretrained(fixture(name + "/text_encoder_2"), compute);
  const double tol = compute == DType::F32 ? 1e-4 : 2e-2;
  const Tensor out = model.forward(expected("t5.input_ids_32", DType::I64));
  const Tensor want = expected(name + ".last_hidden_state_32");
  ASSERT_EQ(out.shape(), want.shape());
  const double err = testing::relative_error(out, want);
  std::printf("  %s, %s compute: relative error %.3g\n", name.c_str(),
              std::string(dtype_name(compute)).c_str(), err);
  EXPECT_LE(err, tol);
}

INSTANTIATE_TEST_SUITE_P(Transformers, T5ModelFixture,
                         ::testing::Combine(::testing::Values("t5_tiny", "t5_tiny_relu"),
                                            ::testing::Values(DType::F32, DType::BF16)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" +
                                  std::string(dtype_name(std::get<1>(info.param)));
                         });

TEST(T5EncoderModel, MaxSequenceLength512) {
  // "plain" and "long" at 512 tokens: distances far past max_distance (128).
  const Tensor all = expected("t5.input_ids_512", DType::I64);
  Tensor ids = Tensor::empty({2, 512}, DType::I64);
  ids.select(0).copy_from(all.select(0));
  const int64_t long_row = 3;  // prompts.json: "long"
  std::copy_n(all.data<int64_t>() + long_row * 512, 512, ids.data<int64_t>() + 512);
  const auto model = T5EncoderModel::from_pretrained(fixture("t5_tiny/text_encoder_2"), DType::F32);
  EXPECT_LE(testing::relative_error(model.forward(ids), expected("t5_tiny.last_hidden_state_512")),
            1e-4);
}

TEST(T5EncoderModel, TokenizerToPromptEmbedsLikeFluxPipeline) {
  const auto tok = tokenizers::T5Tokenizer::from_pretrained(fixture("t5_tiny/tokenizer_2"));
  const auto model = T5EncoderModel::from_pretrained(fixture("t5_tiny/text_encoder_2"), DType::F32);
  const Tensor embeds =
      model.forward(tok.encode_batch({"a photo of an astronaut riding a horse on mars"}, 32));
  EXPECT_LE(testing::relative_error(embeds, expected("t5_tiny.last_hidden_state_32").slice(0, 1)),
            1e-4);
}

TEST(T5EncoderModel, RelativePositionBucketsMatchPyTorch) {
  for (auto [nb, md] : {std::pair{32, 128}, std::pair{8, 20}, std::pair{16, 64}}) {
    const Tensor want = expected(str_cat("t5.relative_position_bucket_", nb, "_", md), DType::I64);
    const int64_t span = (want.numel() - 1) / 2;
    for (int64_t r = -span; r <= span; ++r)
      ASSERT_EQ(relative_position_bucket(r, nb, md), want.data<int64_t>()[r + span])
          << "relative position " << r << ", " << nb << " buckets, max distance " << md;
  }
}

TEST(T5EncoderModel, RandomWeightsRunAndStayFinite) {
  T5Config c;
  c.vocab_size = 50, c.d_model = 12, c.d_kv = 5, c.d_ff = 20, c.num_layers = 2, c.num_heads = 3;
  c.gated = true, c.activation = T5Activation::GeluTanh;
  for (DType compute : {DType::F32, DType::BF16}) {
    const auto model = T5EncoderModel::with_random_weights(c, compute, 3);
    const Tensor out = model.forward(Tensor::zeros({2, 9}, DType::I64));
    EXPECT_EQ(out.shape(), Shape({2, 9, 12}));
    EXPECT_TRUE(testing::all_finite(out));
  }
}

class T5ModelBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = dir_.file("text_encoder_2");
    fs::copy(fixture("t5_tiny/text_encoder_2"), folder_);
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
      T5EncoderModel::from_pretrained(folder_, DType::F32);
      FAIL() << "loaded, expected an error containing: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
  Tensor output() {
    return T5EncoderModel::from_pretrained(folder_, DType::F32)
        .forward(expected("t5.input_ids_32", DType::I64));
  }
  testing::TempDir dir_;
  std::string folder_;
  nlohmann::json config_;
};

TEST_F(T5ModelBadInput, ConfigWithWrongTypesAndValues) {
  config_["d_model"] = 32.5;
  write_config();
  expect_load_error("'d_model' must be an integer");
  config_["d_model"] = 32;
  config_["feed_forward_proj"] = "gated-swiglu";
  write_config();
  expect_load_error("'feed_forward_proj' must be \"ACT\" or \"gated-ACT\"");
  config_["feed_forward_proj"] = "gated-gelu";
  config_["is_decoder"] = true;
  write_config();
  expect_load_error("this is a T5 decoder config");
  config_["is_decoder"] = false;
  config_["relative_attention_num_buckets"] = 2;
  write_config();
  expect_load_error("relative_attention_num_buckets must be at least 4");
  config_["relative_attention_num_buckets"] = 32;
  config_["feed_forward_proj"] = "relu";  // the weights are gated
  write_config();
  expect_load_error("missing tensor 'encoder.block.0.layer.1.DenseReluDense.wi.weight'");
}

TEST_F(T5ModelBadInput, WeightsThatDoNotMatchTheConfig) {
  const auto original = weights();
  auto w = original;
  w.erase("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
  write_weights(w);
  expect_load_error(
      "missing tensor 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias");
  w = original;
  w["encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"] =
      Tensor::zeros({32, 4}, DType::F32);
  write_weights(w);
  expect_load_error(
      "unexpected tensor(s) that the model does not use: "
      "'encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight'");
  config_["d_ff"] = 50;
  write_config();
  expect_load_error("has shape [48, 32], the config implies [50, 32]");
}

TEST_F(T5ModelBadInput, EmbeddingNamesAndIgnoredDecoder) {
  const Tensor reference = output();
  auto w = weights();
  // Only the tied twin, as some checkpoints have it.
  w["encoder.embed_tokens.weight"] = w["shared.weight"];
  w.erase("shared.weight");
  write_weights(w);
  EXPECT_EQ(testing::relative_error(output(), reference), 0.0);
  // Both, plus a full T5's decoder and head: loads, same output.
  w["shared.weight"] = w["encoder.embed_tokens.weight"];
  w["decoder.block.0.layer.0.SelfAttention.q.weight"] = Tensor::zeros({32, 32}, DType::F32);
  w["lm_head.weight"] = Tensor::zeros({1128, 32}, DType::F32);
  write_weights(w);
  EXPECT_EQ(testing::relative_error(output(), reference), 0.0);
  w["encoder.embed_tokens.weight"] = Tensor::zeros({1000, 32}, DType::F32);
  write_weights(w);
  expect_load_error("'shared.weight' and its tied twin 'encoder.embed_tokens.weight' differ");
}

TEST(T5EncoderModel, RefusesBadInputIds) {
  const auto model = T5EncoderModel::from_pretrained(fixture("t5_tiny/text_encoder_2"), DType::F32);
  Tensor ids = Tensor::zeros({1, 4}, DType::I64);
  ids.data<int64_t>()[2] = -1;
  try {
    model.forward(ids);
    FAIL() << "ran with a negative id";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("input_ids[0, 2] = -1 is outside the vocabulary [0, 1128)"),
        std::string::npos)
        << e.what();
  }
  EXPECT_THROW(model.forward(Tensor::zeros({1, 0}, DType::I64)), Error);
  EXPECT_THROW(model.forward(Tensor::zeros({4}, DType::I64)), Error);
}

}  // namespace
}  // namespace paradiff::models::t5
