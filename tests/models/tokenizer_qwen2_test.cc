// Qwen2Tokenizer against transformers' own ids (tests/fixtures/tokenizers/qwen2 and qwen2_legacy:
// a tiny byte-level BPE trained with the `tokenizers` library, saved as tokenizer.json and as
// vocab.json + merges.txt; made by tools/make_fixtures/make_tokenizer_fixtures.py): every corpus
// string in both formats, QwenImagePipeline's templated, truncated and padded prompts, decoding,
// the pre-tokenizer's pieces; and what it must refuse.
#include "paradiff/models/tokenizers/qwen2_tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "paradiff/core/error.h"
#include "paradiff/models/tokenizers/unicode_text.h"
#include "testing/temp_dir.h"
#include "testing/test_util.h"

namespace paradiff::models::tokenizers {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) {
  return testing::source_path("tests/fixtures/tokenizers/" + name);
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

const nlohmann::json& cases() {
  static const nlohmann::json c = read_json(fixture("cases.json"));
  return c;
}

void expect_load_error(const std::string& folder, const std::string& needle) {
  try {
    Qwen2Tokenizer::from_pretrained(folder);
    FAIL() << "loaded, expected an error containing: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

class Qwen2TokenizerFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(Qwen2TokenizerFixture, CorpusIdsMatchTransformers) {
  const auto tok = Qwen2Tokenizer::from_pretrained(fixture(GetParam()));
  const auto texts = cases()["corpus"].get<std::vector<std::string>>();
  const auto& want = cases()["tokenize"][GetParam()];
  ASSERT_EQ(want.size(), texts.size());
  ASSERT_GE(texts.size(), 450u);
  int mismatches = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto got = tok.tokenize(texts[i]);
    if (got != want[i].get<std::vector<int64_t>>() && ++mismatches <= 5)
      ADD_FAILURE() << "string " << i << " " << nlohmann::json(texts[i]).dump() << ": got "
                    << nlohmann::json(got).dump() << ", transformers " << want[i].dump();
  }
  EXPECT_EQ(mismatches, 0) << "of " << texts.size();
  EXPECT_EQ(tok.pad_token_id(), 700);  // <|endoftext|>
  EXPECT_EQ(tok.eos_token_id(), 702);  // <|im_end|>
  EXPECT_EQ(tok.vocab_size(), 718);
}

TEST_P(Qwen2TokenizerFixture, QwenImagePromptsMatchTransformers) {
  const auto tok = Qwen2Tokenizer::from_pretrained(fixture(GetParam()));
  const auto& q = cases()["qwen_image"];
  EXPECT_EQ(q["template"].get<std::string>(), QwenImagePromptTemplate::text);
  EXPECT_EQ(q["drop"].get<int64_t>(), QwenImagePromptTemplate::drop);
  EXPECT_EQ(q["max_length"].get<int64_t>(), QwenImagePromptTemplate::tokenizer_max_length);
  for (const auto& batch : q["batches"]) {
    const auto prompts = batch["prompts"].get<std::vector<std::string>>();
    const QwenImagePromptTokens got = tokenize_qwen_image_prompts(tok, prompts);
    const auto ids = batch["input_ids"].get<std::vector<std::vector<int64_t>>>();
    const auto mask = batch["attention_mask"].get<std::vector<std::vector<int64_t>>>();
    ASSERT_EQ(got.input_ids.shape(),
              Shape({static_cast<int64_t>(ids.size()), static_cast<int64_t>(ids[0].size())}));
    ASSERT_EQ(got.attention_mask.shape(), got.input_ids.shape());
    for (size_t r = 0; r < ids.size(); ++r) {
      const int64_t* g = got.input_ids.data<int64_t>() + r * ids[0].size();
      const int64_t* m = got.attention_mask.data<int64_t>() + r * ids[0].size();
      EXPECT_EQ(std::vector<int64_t>(g, g + ids[0].size()), ids[r]) << "prompt " << prompts[r];
      EXPECT_EQ(std::vector<int64_t>(m, m + ids[0].size()), mask[r]) << "prompt " << prompts[r];
    }
    EXPECT_EQ(got.drop, 34);
  }
}

INSTANTIATE_TEST_SUITE_P(SaveFormats, Qwen2TokenizerFixture,
                         ::testing::Values("qwen2", "qwen2_legacy"));

TEST(Qwen2Tokenizer, PromptTemplateText) {
  EXPECT_EQ(qwen_image_prompt_text("a {cat}"),
            "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, "
            "quantity, text, spatial relationships of the objects and background:<|im_end|>\n"
            "<|im_start|>user\na {cat}<|im_end|>\n<|im_start|>assistant\n");
}

TEST(Qwen2Tokenizer, PreTokenizerPieces) {
  auto pieces = [](std::u32string_view text) {
    std::vector<std::string> out;
    for (auto p : split_qwen2_pattern(text)) out.push_back(encode_utf8(p));
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces(U"Hello, world! It's 2024."),
            (V{"Hello", ",", " world", "!", " It", "'s", " ", "2", "0", "2", "4", "."}));
  EXPECT_EQ(pieces(U"a  b\n\n c   "), (V{"a", " ", " b", "\n\n", " c", "   "}));
  EXPECT_EQ(pieces(U"x !!\r\n\ty"), (V{"x", " !!\r\n", "\ty"}));
  EXPECT_EQ(pieces(U"WE'RE 'Ll"), (V{"WE", "'RE", " '", "Ll"}));
  EXPECT_EQ(pieces(U"东京🚀ok 🚀 ok"), (V{"东京", "🚀ok", " 🚀", " ok"}));  // "🚀" is not \p{L}
  EXPECT_EQ(pieces(U""), V{});
}

TEST(Qwen2Tokenizer, DecodesAsTransformers) {
  const auto tok = Qwen2Tokenizer::from_pretrained(fixture("qwen2"));
  const std::string text = "<|im_start|>user\n一只猫 café 🚀<|im_end|>";
  const auto ids = tok.tokenize(text);
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_EQ(tok.decode(ids, true), "user\n一只猫 café 🚀");
  const auto fox = tok.tokenize("🦊");  // not in the tiny vocabulary: several byte tokens
  ASSERT_GE(fox.size(), 2u);
  EXPECT_EQ(tok.decode({fox[0]}), "\xEF\xBF\xBD");  // a partial character
}

TEST(Qwen2Tokenizer, RefusesBadFolders) {
  testing::TempDir dir;
  const std::string folder = dir.file("qwen");
  fs::copy(fixture("qwen2_legacy"), folder);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(folder + "/" + name, std::ios::binary) << text;
  };
  fs::remove(folder + "/merges.txt");
  expect_load_error(folder, "has no merges.txt (it needs tokenizer.json, or vocab.json and");
  write("merges.txt", "#version: 0.2\nq zzz\n");
  expect_load_error(folder, "merges.txt: line 2: token \"zzz\" is not in");
  fs::copy_file(fixture("qwen2_legacy/merges.txt"), folder + "/merges.txt",
                fs::copy_options::overwrite_existing);
  write("tokenizer.json", R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})");
  expect_load_error(folder, "model.type is \"Unigram\"; Qwen2Tokenizer needs a \"BPE\" model");
  fs::remove(folder + "/tokenizer.json");
  write("tokenizer_config.json", R"({"split_special_tokens": true})");
  expect_load_error(folder, "tokenizer_config.json: 'split_special_tokens' true is not supported");
  write("tokenizer_config.json", R"({"split_special_tokens": "no"})");
  expect_load_error(folder, "'split_special_tokens' must be");
  // Special tokens transformers' Qwen2Tokenizer defaults to ("<|endoftext|>" for eos, unk and
  // pad) or the config names, missing from the vocabulary and the added tokens, become new tokens
  // after the vocabulary, as in transformers (checked by hand: ids 700 and then 701).
  write("tokenizer_config.json", "{}");
  auto tok = Qwen2Tokenizer::from_pretrained(folder);
  EXPECT_EQ(tok.pad_token_id(), 700);
  EXPECT_EQ(tok.eos_token_id(), 700);
  EXPECT_EQ(tok.tokenize("a<|endoftext|>b"), (std::vector<int64_t>{64, 700, 65}));
  write("tokenizer_config.json", R"({"eos_token": "<|end|>", "pad_token": null})");
  tok = Qwen2Tokenizer::from_pretrained(folder);
  EXPECT_EQ(tok.eos_token_id(), 700);
  EXPECT_EQ(tok.tokenize("<|end|><|endoftext|>"), (std::vector<int64_t>{700, 701}));
  // Prompts of different lengths without a pad token cannot be padded.
  EXPECT_EQ(tok.pad_token_id(), -1);
  EXPECT_NO_THROW(tokenize_qwen_image_prompts(tok, {"a", "b"}));
  try {
    tokenize_qwen_image_prompts(tok, {"a", "a much longer prompt"});
    FAIL() << "padded without a pad token";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the tokenizer has no pad_token"), std::string::npos);
  }
  EXPECT_THROW(tokenize_qwen_image_prompts(tok, {}), Error);
}

}  // namespace
}  // namespace paradiff::models::tokenizers
