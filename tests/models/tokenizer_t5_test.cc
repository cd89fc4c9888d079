// T5Tokenizer from spiece.model (pieces and charsmap in transformers 5's pipeline) against
// transformers' own ids (tests/fixtures/text_encoders/t5_tiny/tokenizer_2, made by
// tools/make_fixtures/make_text_encoder_fixtures.py): FluxPipeline's calls at
// max_sequence_length 32 and 512, 300 random strings, sentinels and special tokens in the text,
// truncation, padding and the warning; and what it must refuse.
#include "paradiff/models/tokenizers/t5_tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "paradiff/io/safetensors.h"
#include "testing/temp_dir.h"
#include "testing/test_util.h"

namespace paradiff::models::tokenizers {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) {
  return testing::source_path("tests/fixtures/text_encoders/" + name);
}

const std::string kFolder = "t5_tiny/tokenizer_2";

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::vector<std::string> prompts() {
  std::vector<std::string> out;
  for (const auto& p : read_json(fixture("prompts.json"))) out.push_back(p["text"]);
  return out;
}

void expect_load_error(const std::string& folder, const std::string& needle) {
  try {
    T5Tokenizer::from_pretrained(folder);
    FAIL() << "loaded, expected an error containing: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

class T5Fixture : public ::testing::TestWithParam<int64_t> {};

TEST_P(T5Fixture, PromptIdsMatchTransformers) {
  const int64_t max_length = GetParam();
  const auto tok = T5Tokenizer::from_pretrained(fixture(kFolder));
  const auto texts = prompts();
  const Tensor want = SafetensorsFile::open(fixture("expected.safetensors"))
                          .read(str_cat("t5.input_ids_", max_length), DType::I64);
  ASSERT_EQ(want.shape(), Shape({static_cast<int64_t>(texts.size()), max_length}));
  const Tensor got = tok.encode_batch(texts, max_length);
  ASSERT_EQ(got.shape(), want.shape());
  for (int64_t i = 0; i < want.dim(0); ++i) {
    const int64_t* g = got.data<int64_t>() + i * max_length;
    const int64_t* w = want.data<int64_t>() + i * max_length;
    EXPECT_EQ(std::vector<int64_t>(g, g + max_length), std::vector<int64_t>(w, w + max_length))
        << "prompt " << i << ": " << texts[i];
  }
}

INSTANTIATE_TEST_SUITE_P(MaxSequenceLength, T5Fixture, ::testing::Values(32, 512));

TEST(T5Tokenizer, RandomStringsMatchTransformers) {
  const auto tok = T5Tokenizer::from_pretrained(fixture(kFolder));
  int count = 0, mismatches = 0;
  for (const auto& s : read_json(fixture("random_strings.json"))) {
    if (!s.contains("t5")) continue;
    ++count;
    const std::string text = s["text"];
    const auto want = s["t5"].get<std::vector<int64_t>>();
    const auto got = tok.tokenize(text);
    if (got != want && ++mismatches <= 5)
      ADD_FAILURE() << "text " << nlohmann::json(text).dump() << ": got "
                    << nlohmann::json(got).dump() << ", transformers "
                    << nlohmann::json(want).dump();
  }
  EXPECT_GE(count, 250);
  EXPECT_EQ(mismatches, 0);
}

TEST(T5Tokenizer, SpecialTokensSentinelsPaddingAndTruncation) {
  const auto tok = T5Tokenizer::from_pretrained(fixture(kFolder));
  EXPECT_EQ(tok.eos_token_id(), 1);
  EXPECT_EQ(tok.pad_token_id(), 0);
  EXPECT_EQ(tok.unk_token_id(), 2);
  EXPECT_EQ(tok.model_max_length(), 512);
  EXPECT_EQ(tok.vocab_size(), 1100);  // 1000 pieces + 100 sentinels
  // Values transformers gives (see the fixture script's notes).
  EXPECT_EQ(tok.tokenize("Hello, café don't! a photo"),
            (std::vector<int64_t>{223, 157, 173, 209, 7, 199, 222, 216, 4, 164, 9, 14, 112}));
  EXPECT_EQ(tok.tokenize("<extra_id_0> <extra_id_99></s>"), (std::vector<int64_t>{1099, 1000, 1}));

  const Encoding empty = tok.encode("", 4);
  EXPECT_EQ(empty.input_ids, (std::vector<int64_t>{1, 0, 0, 0}));
  const Encoding three = tok.encode("photo photo photo", 4);
  EXPECT_EQ(three.input_ids, (std::vector<int64_t>{112, 112, 112, 1}));
  EXPECT_TRUE(three.truncated_ids.empty());
  const Encoding cut = tok.encode("photo photo photo a", 4);
  EXPECT_EQ(cut.input_ids, (std::vector<int64_t>{112, 112, 112, 1}));
  EXPECT_EQ(cut.truncated_ids, (std::vector<int64_t>{14}));
  EXPECT_EQ(tok.decode(cut.input_ids), "photo photo photo</s>");
  EXPECT_EQ(tok.decode(cut.input_ids, true), "photo photo photo");
  EXPECT_THROW(tok.encode("a", 0), Error);

  ::testing::internal::CaptureStderr();
  tok.encode_batch({"photo photo photo a photo"}, 4);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("The following part of your input was truncated because "
                     "`max_sequence_length` is set to  4 tokens: ['a photo']"),
            std::string::npos)
      << log;
}

// A copy of the tokenizer folder that a test may change.
class T5BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = dir_.file("tokenizer_2");
    fs::copy(fixture(kFolder), folder_);
  }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(folder_ + "/" + name, std::ios::binary) << text;
  }
  testing::TempDir dir_;
  std::string folder_;
};

TEST_F(T5BadInput, MissingOrDamagedModel) {
  expect_load_error(dir_.file("nowhere"), "does not exist or is not a directory");
  fs::remove(folder_ + "/spiece.model");
  expect_load_error(folder_, "has neither tokenizer.json nor spiece.model");
  write("spiece.model", "this is not a SentencePiece model");
  expect_load_error(folder_, "spiece.model: cannot load the SentencePiece model");
  write("spiece.model", "");
  expect_load_error(folder_, "spiece.model: cannot load the SentencePiece model");
}

TEST_F(T5BadInput, ConfigWithWrongTypes) {
  write("tokenizer_config.json", "{\"eos_token\": [\"</s>\"]}");
  expect_load_error(folder_, "'eos_token' must be a string or an object");
  write("tokenizer_config.json", "{\"extra_ids\": \"many\"}");
  expect_load_error(folder_, "'extra_ids' must be an integer");
  write("tokenizer_config.json", "{\"pad_token\": \"<nothing>\"}");
  expect_load_error(folder_, "special token '<nothing>' is neither a piece of spiece.model");
  write("tokenizer_config.json", "{\"added_tokens_decoder\": {\"5\": {\"content\": 7}}}");
  expect_load_error(folder_, "added_tokens_decoder[\"5\"] needs a string \"content\"");
  write("tokenizer_config.json", "{\"model_max_length\": 512,}");
  expect_load_error(folder_, "tokenizer_config.json: invalid JSON");
}

TEST_F(T5BadInput, SpieceModelAloneAndTokenizerJson) {
  // Without a config, transformers adds 100 sentinels after the pieces, in reverse order.
  fs::remove(folder_ + "/tokenizer_config.json");
  auto tok = T5Tokenizer::from_pretrained(folder_);
  EXPECT_EQ(tok.tokenize("<extra_id_0><extra_id_99>"), (std::vector<int64_t>{1099, 1000}));
  EXPECT_EQ(tok.tokenize("a</s>b"),
            T5Tokenizer::from_pretrained(fixture(kFolder)).tokenize("a</s>b"));
  // extra_ids 0: no sentinels, "<extra_id_0>" is plain text.
  write("tokenizer_config.json", "{\"extra_ids\": 0}");
  tok = T5Tokenizer::from_pretrained(folder_);
  EXPECT_EQ(tok.vocab_size(), 1000);
  EXPECT_GT(tok.tokenize("<extra_id_0>").size(), 1u);
  // tokenizer.json's added tokens win over everything else.
  write("tokenizer.json", R"({"added_tokens": [
      {"id": 0, "content": "<pad>", "special": true, "normalized": false},
      {"id": 1, "content": "</s>", "special": true, "normalized": false},
      {"id": 2, "content": "<unk>", "special": true, "normalized": false},
      {"id": 1000, "content": "<mark>", "special": true, "normalized": false}]})");
  tok = T5Tokenizer::from_pretrained(folder_);
  EXPECT_EQ(tok.vocab_size(), 1001);
  const auto photo = tok.tokenize("photo");
  ASSERT_EQ(photo.size(), 1u);
  EXPECT_EQ(tok.tokenize("photo<mark>photo"), (std::vector<int64_t>{photo[0], 1000, photo[0]}));
}

}  // namespace
}  // namespace paradiff::models::tokenizers
