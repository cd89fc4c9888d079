// Qwen2.5-VL's text model (QwenImagePipeline's text encoder) against transformers' outputs, and
// QwenImagePipeline's prompt encoding against diffusers' (tests/fixtures/qwen2_5_vl, made by
// tools/make_fixtures/make_qwen2_5_vl_fixtures.py), in fp32 and bf16 compute: a sharded
// checkpoint with transformers 5's config and older tensor names, the same tensors under the
// current names, a flat legacy config with bf16 weights; right and left padding; what loading
// must accept and refuse.
#include "paradiff/models/qwen2_5_vl/qwen2_5_vl_text_model.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "paradiff/io/safetensors.h"
#include "paradiff/io/safetensors_writer.h"
#include "paradiff/models/qwen2_5_vl/qwen_image_prompt_embeds.h"
#include "paradiff/models/tokenizers/qwen2_tokenizer.h"
#include "testing/temp_dir.h"
#include "testing/test_util.h"

namespace paradiff::models::qwen2_5_vl {
namespace {

namespace fs = std::filesystem;

// The fixture script's prompts.
const std::vector<std::string> kPrompts = {
    "a red fox in the snow",
    "A highly detailed oil painting of a quiet harbour town at dawn, fishing boats and gulls.",
    "",
    "東京 {night} 🚀",
};

std::string fixture(const std::string& name) {
  return testing::source_path("tests/fixtures/qwen2_5_vl/" + name);
}

Tensor expected(const std::string& name, DType dtype = DType::F32) {
  return SafetensorsFile::open(fixture("expected.safetensors")).read(name, dtype);
}

// `hidden` (B, S, C) with the rows where `mask` is 0 set to zero, as forward() returns them.
Tensor valid_rows(const Tensor& hidden, const Tensor& mask) {
  Tensor out = hidden.clone();
  const int64_t b = hidden.dim(0), s = hidden.dim(1);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < s; ++j)
      if (mask.data<int64_t>()[i * s + j] == 0) {
        Tensor row = out.select(i).slice(j, 1);
        row.copy_from(Tensor::zeros(row.shape(), DType::F32));
      }
  return out;
}

double tolerance(DType compute) {
  return compute == DType::F32 ? 1e-4 : 2e-2;
}

class Qwen2_5_VLFixture
    : public ::testing::TestWithParam<std::tuple<std::string, std::string, DType>> {};

TEST_P(Qwen2_5_VLFixture, MatchesTransformers) {
  const auto [folder, input, compute] = GetParam();
  const auto model =
      Qwen2_5_VLTextModel::from_pretrained(fixture(folder + "/text_encoder"), compute);
  const std::string weights = folder == "flat" ? "flat" : "tiny";
  const Tensor ids = expected(input + ".input_ids", DType::I64);
  const Tensor mask = expected(input + ".attention_mask", DType::I64);
  const Tensor out = model.forward(ids, mask);
  const Tensor want = valid_rows(expected(weights + "." + input + ".last_hidden_state"), mask);
  ASSERT_EQ(out.shape(), want.shape());
  const double err = testing::relative_error(out, want);
  std::printf("  %s, %s, %s compute: relative error %.3g\n", folder.c_str(), input.c_str(),
              std::string(dtype_name(compute)).c_str(), err);
  EXPECT_LE(err, tolerance(compute));
}

INSTANTIATE_TEST_SUITE_P(Transformers, Qwen2_5_VLFixture,
                         ::testing::Combine(::testing::Values("tiny", "tiny_new_prefix", "flat"),
                                            ::testing::Values("single", "batch", "batch_left"),
                                            ::testing::Values(DType::F32, DType::BF16)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + std::get<1>(info.param) + "_" +
                                  std::string(dtype_name(std::get<2>(info.param)));
                         });

TEST(Qwen2_5_VLTextModel, ReadsBothConfigLayouts) {
  const auto tiny = Qwen2_5_VLTextConfig::load(fixture("tiny/text_encoder/config.json"));
  EXPECT_EQ(tiny.hidden_size, 32);
  EXPECT_EQ(tiny.num_attention_heads, 4);
  EXPECT_EQ(tiny.num_key_value_heads, 2);
  EXPECT_EQ(tiny.num_hidden_layers, 2);
  EXPECT_EQ(tiny.intermediate_size, 48);
  EXPECT_EQ(tiny.vocab_size, 720);
  EXPECT_EQ(tiny.rms_norm_eps, 1e-6);
  EXPECT_EQ(tiny.rope_theta, 1e6);
  EXPECT_EQ(tiny.mrope_section, (std::vector<int64_t>{1, 1, 2}));
  const auto flat = Qwen2_5_VLTextConfig::load(fixture("flat/text_encoder/config.json"));
  EXPECT_EQ(flat.hidden_size, 48);
  EXPECT_EQ(flat.num_attention_heads, 6);
  EXPECT_EQ(flat.num_key_value_heads, 2);
  EXPECT_EQ(flat.num_key_value_groups(), 3);
  EXPECT_EQ(flat.rms_norm_eps, 1e-5);
  EXPECT_EQ(flat.rope_theta, 1e4);
  // transformers 5's defaults when a key is absent; a null num_key_value_heads means no grouping.
  const auto defaults = Qwen2_5_VLTextConfig::from_json(
      JsonConfig::parse(R"({"text_config": {"num_key_value_heads": null}})", "c.json"));
  EXPECT_EQ(defaults.hidden_size, 8192);
  EXPECT_EQ(defaults.num_key_value_heads, 64);
  EXPECT_EQ(defaults.rms_norm_eps, 1e-5);
  EXPECT_EQ(defaults.rope_theta, 1e6);
  EXPECT_EQ(Qwen2_5_VLTextConfig::from_json(JsonConfig::parse("{}", "c.json")).num_key_value_heads,
            8);
}

TEST(Qwen2_5_VLTextModel, NoMaskIsAllValid) {
  const auto model = Qwen2_5_VLTextModel::from_pretrained(fixture("tiny/text_encoder"), DType::F32);
  const Tensor ids = expected("single.input_ids", DType::I64);
  const Tensor with_mask = model.forward(ids, expected("single.attention_mask", DType::I64));
  EXPECT_EQ(testing::relative_error(model.forward(ids), with_mask), 0.0);
  EXPECT_LE(testing::relative_error(with_mask, expected("tiny.single.last_hidden_state")), 1e-4);
}

// QwenImagePipeline.encode_prompt from the tokenizer on: ids, the template drop, the padding and
// the mask, and max_sequence_length.
class QwenImagePromptFixture : public ::testing::TestWithParam<DType> {};

TEST_P(QwenImagePromptFixture, MatchesDiffusersEncodePrompt) {
  const DType compute = GetParam();
  const auto tok = tokenizers::Qwen2Tokenizer::from_pretrained(
      testing::source_path("tests/fixtures/tokenizers/qwen2"));
  const auto model = Qwen2_5_VLTextModel::from_pretrained(fixture("tiny/text_encoder"), compute);
  struct Case {
    std::string key;
    std::vector<std::string> prompts;
    int64_t max_sequence_length;
  };
  for (const Case& c : {Case{"pipe_batch", kPrompts, 1024}, Case{"pipe_batch_msl8", kPrompts, 8},
                        Case{"pipe_single", {kPrompts[0]}, 512}}) {
    const auto tokens = tokenizers::tokenize_qwen_image_prompts(tok, c.prompts);
    const auto got = encode_qwen_image_prompt(model, tokens, c.max_sequence_length);
    const Tensor want = expected(c.key + ".prompt_embeds");
    const Tensor want_mask = expected(c.key + ".prompt_embeds_mask", DType::I64);
    ASSERT_EQ(got.prompt_embeds.shape(), want.shape()) << c.key;
    ASSERT_EQ(got.prompt_embeds_mask.shape(), want_mask.shape()) << c.key;
    for (int64_t i = 0; i < want_mask.numel(); ++i)
      ASSERT_EQ(got.prompt_embeds_mask.data<int64_t>()[i], want_mask.data<int64_t>()[i])
          << c.key << " mask entry " << i;
    const double err = testing::relative_error(got.prompt_embeds, want);
    std::printf("  %s, %s compute: relative error %.3g\n", c.key.c_str(),
                std::string(dtype_name(compute)).c_str(), err);
    EXPECT_LE(err, tolerance(compute)) << c.key;
  }
}

INSTANTIATE_TEST_SUITE_P(Diffusers, QwenImagePromptFixture,
                         ::testing::Values(DType::F32, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(QwenImagePromptEmbeds, TokenizerGivesTheFixtureIds) {
  const auto tok = tokenizers::Qwen2Tokenizer::from_pretrained(
      testing::source_path("tests/fixtures/tokenizers/qwen2"));
  const auto tokens = tokenizers::tokenize_qwen_image_prompts(tok, kPrompts);
  const Tensor ids = expected("batch.input_ids", DType::I64);
  ASSERT_EQ(tokens.input_ids.shape(), ids.shape());
  for (int64_t i = 0; i < ids.numel(); ++i)
    ASSERT_EQ(tokens.input_ids.data<int64_t>()[i], ids.data<int64_t>()[i]) << "entry " << i;
}

TEST(QwenImagePromptEmbeds, Refusals) {
  const auto model = Qwen2_5_VLTextModel::from_pretrained(fixture("tiny/text_encoder"), DType::F32);
  const Tensor ids = expected("single.input_ids", DType::I64);
  const Tensor mask = expected("single.attention_mask", DType::I64);
  for (int64_t msl : {0, 1025}) {
    try {
      encode_qwen_image_prompt(model, ids, mask, 34, msl);
      FAIL() << "accepted max_sequence_length " << msl;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("max_sequence_length must be in [1, 1024]"),
                std::string::npos)
          << e.what();
    }
  }
  try {
    encode_qwen_image_prompt(model, ids, mask, ids.dim(1), 512);
    FAIL() << "accepted a drop that leaves nothing";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("would be empty"), std::string::npos) << e.what();
  }
  // max_sequence_length 1 keeps the first kept token of each prompt.
  const auto one = encode_qwen_image_prompt(model, ids, mask, 34, 1);
  EXPECT_EQ(one.prompt_embeds.shape(), Shape({1, 1, 32}));
  EXPECT_EQ(testing::relative_error(one.prompt_embeds.select(0),
                                    model.forward(ids, mask).select(0).slice(34, 1)),
            0.0);
}

TEST(Qwen2_5_VLTextModel, RandomWeightsRunAndStayFinite) {
  Qwen2_5_VLTextConfig c;
  c.vocab_size = 50, c.hidden_size = 24, c.intermediate_size = 20, c.num_hidden_layers = 2;
  c.num_attention_heads = 3, c.num_key_value_heads = 1, c.mrope_section = {1, 1, 2};
  for (DType compute : {DType::F32, DType::BF16}) {
    const auto model = Qwen2_5_VLTextModel::with_random_weights(c, compute, 3);
    Tensor mask = Tensor::zeros({2, 9}, DType::I64);
    for (int64_t j = 2; j < 9; ++j) mask.data<int64_t>()[j] = 1;  // left padding, then none
    for (int64_t j = 9; j < 18; ++j) mask.data<int64_t>()[j] = 1;
    const Tensor out = model.forward(Tensor::zeros({2, 9}, DType::I64), mask);
    EXPECT_EQ(out.shape(), Shape({2, 9, 24}));
    EXPECT_TRUE(testing::all_finite(out));
    // Padded rows are zero.
    EXPECT_EQ(
        testing::relative_error(out.select(0).slice(0, 2), Tensor::zeros({2, 24}, DType::F32)),
        0.0);
  }
}

TEST(Qwen2_5_VLTextModel, RefusesBadInputs) {
  const auto model = Qwen2_5_VLTextModel::from_pretrained(fixture("tiny/text_encoder"), DType::F32);
  auto expect_error = [&](const Tensor& ids, const Tensor& mask, const std::string& needle) {
    try {
      model.forward(ids, mask);
      FAIL() << "ran, expected an error containing: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  Tensor ids = Tensor::zeros({1, 4}, DType::I64);
  ids.data<int64_t>()[2] = 720;
  expect_error(ids, Tensor(), "input_ids[0, 2] = 720 is outside the vocabulary [0, 720)");
  ids.data<int64_t>()[2] = 0;
  Tensor mask = Tensor::zeros({1, 4}, DType::I64);
  mask.data<int64_t>()[1] = 2;
  expect_error(ids, mask, "attention_mask[0, 1] = 2");
  expect_error(ids, Tensor::zeros({1, 3}, DType::I64), "attention_mask must be i64 like");
  expect_error(Tensor::zeros({1, 4}, DType::F32), Tensor(), "input_ids must be i64 (B, S)");
}

class Qwen2_5_VLBadCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = dir_.file("text_encoder");
    fs::copy(fixture("tiny_new_prefix/text_encoder"), folder_);
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
      Qwen2_5_VLTextModel::from_pretrained(folder_, DType::F32);
      FAIL() << "loaded, expected an error containing: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
  testing::TempDir dir_;
  std::string folder_;
  nlohmann::json config_;
};

TEST_F(Qwen2_5_VLBadCheckpoint, BadConfigs) {
  const nlohmann::json original = config_;
  config_["text_config"]["hidden_size"] = 32.5;
  write_config();
  expect_load_error("text_config: config key 'hidden_size' must be an integer, got 32.5");
  config_ = original;
  config_["text_config"]["num_key_value_heads"] = 3;
  write_config();
  expect_load_error("num_attention_heads (4) must be a multiple of num_key_value_heads (3)");
  config_ = original;
  config_["text_config"]["rope_parameters"]["mrope_section"] = {1, 1, 1};
  write_config();
  expect_load_error(
      "mrope_section must be 3 entries summing to head_dim / 2 = 4, got 3 entries "
      "summing to 3");
  config_ = original;
  config_["text_config"]["rope_parameters"]["rope_type"] = "yarn";
  write_config();
  expect_load_error("RoPE type \"yarn\" is not supported");
  config_ = original;
  config_["text_config"]["use_sliding_window"] = true;
  write_config();
  expect_load_error("'use_sliding_window' is true");
  config_ = original;
  config_["text_config"]["hidden_act"] = "gelu";
  write_config();
  expect_load_error("config key 'hidden_act' must be \"silu\"");
  config_ = original;
  config_["text_config"] = "nope";
  write_config();
  expect_load_error("config key 'text_config' must be an object, got \"nope\"");
  config_ = original;
  config_["model_type"] = "clip_text_model";
  write_config();
  expect_load_error("config key 'model_type' is \"clip_text_model\"");
  config_ = original;
  config_["text_config"]["num_hidden_layers"] = 3;  // the weights have 2
  write_config();
  expect_load_error("missing tensor 'model.language_model.layers.2.input_layernorm.weight'");
}

TEST_F(Qwen2_5_VLBadCheckpoint, WeightsThatDoNotMatch) {
  const auto original = weights();
  auto w = original;
  w.erase("model.language_model.layers.1.self_attn.k_proj.bias");
  write_weights(w);
  expect_load_error("missing tensor 'model.language_model.layers.1.self_attn.k_proj.bias'");
  w = original;
  w["model.language_model.layers.0.mlp.up_proj.weight"] = Tensor::zeros({40, 32}, DType::F32);
  write_weights(w);
  expect_load_error(
      "tensor 'model.language_model.layers.0.mlp.up_proj.weight' has shape [40, 32], the config "
      "implies [48, 32]");
  w = original;
  w["model.language_model.layers.0.self_attn.o_proj.bias"] = Tensor::zeros({32}, DType::F32);
  write_weights(w);
  expect_load_error(
      "unexpected tensor(s) that the model does not use: "
      "'model.language_model.layers.0.self_attn.o_proj.bias'");
  // Both namings at once.
  w = original;
  w["model.embed_tokens.weight"] = w["model.language_model.embed_tokens.weight"];
  write_weights(w);
  expect_load_error(
      "holds both 'model.language_model.embed_tokens.weight' and "
      "'model.embed_tokens.weight'");
}

TEST_F(Qwen2_5_VLBadCheckpoint, OlderNamesInMessagesAndIgnoredParts) {
  const Tensor ids = expected("single.input_ids", DType::I64);
  const Tensor reference = Qwen2_5_VLTextModel::from_pretrained(folder_, DType::F32).forward(ids);
  // The text model alone, older names, no vision tower and no lm_head: loads, same output.
  std::map<std::string, Tensor> older;
  for (auto& [name, t] : weights()) {
    const std::string p = "model.language_model.";
    if (name.compare(0, p.size(), p) == 0) older["model." + name.substr(p.size())] = t;
  }
  write_weights(older);
  EXPECT_EQ(testing::relative_error(
                Qwen2_5_VLTextModel::from_pretrained(folder_, DType::F32).forward(ids), reference),
            0.0);
  older.erase("model.norm.weight");
  write_weights(older);
  expect_load_error(
      "(older names: 'model.*' read as 'model.language_model.*'): missing tensor "
      "'model.language_model.norm.weight'");
}

}  // namespace
}  // namespace paradiff::models::qwen2_5_vl
