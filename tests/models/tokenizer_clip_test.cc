// CLIPTokenizer against transformers' own ids (tests/fixtures/text_encoders, made by
// tools/make_fixtures/make_text_encoder_fixtures.py): OpenAI's real BPE with a FLUX.1-style
// config, a small BPE with transformers 5's config, 600 random strings; truncation, padding,
// decoding, the warning; and what it must refuse.
#include "paradiff/models/tokenizers/clip_tokenizer.h"

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

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::vector<std::string> prompts() {
  std::vector<std::string> out;
  for (const auto& p : read_json(fixture("prompts.json"))) out.push_back(p["text"]);
  return out;
}

std::vector<int64_t> row(const Tensor& ids, int64_t r) {
  const int64_t* p = ids.data<int64_t>() + r * ids.dim(1);
  return std::vector<int64_t>(p, p + ids.dim(1));
}

Tensor expected(const std::string& name) {
  return SafetensorsFile::open(fixture("expected.safetensors")).read(name, DType::I64);
}

// Loading must fail with a message containing `needle`.
void expect_load_error(const std::string& folder, const std::string& needle) {
  try {
    CLIPTokenizer::from_pretrained(folder);
    FAIL() << "loaded, expected an error containing: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

class ClipFixture : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(ClipFixture, PromptIdsMatchTransformers) {
  const auto [folder, key] = GetParam();
  const auto tok = CLIPTokenizer::from_pretrained(fixture(folder));
  EXPECT_EQ(tok.model_max_length(), 77);
  const auto texts = prompts();
  const Tensor want = expected(key);
  ASSERT_EQ(want.dim(0), static_cast<int64_t>(texts.size()));
  for (size_t i = 0; i < texts.size(); ++i) {
    const Encoding e = tok.encode(texts[i]);
    EXPECT_EQ(e.input_ids, row(want, static_cast<int64_t>(i)))
        << "prompt " << i << ": " << texts[i];
  }
  const Tensor batch = tok.encode_batch(texts);
  ASSERT_EQ(batch.shape(), want.shape());
  EXPECT_TRUE(std::equal(batch.data<int64_t>(), batch.data<int64_t>() + batch.numel(),
                         want.data<int64_t>()));
}

INSTANTIATE_TEST_SUITE_P(
    Transformers, ClipFixture,
    ::testing::Values(std::pair{std::string("clip_openai_tokenizer"), "clip_openai.input_ids"},
                      std::pair{std::string("clip_tiny/tokenizer"), "clip_tiny.input_ids"}));

TEST(CLIPTokenizer, RandomStringsMatchTransformers) {
  const auto tok = CLIPTokenizer::from_pretrained(fixture("clip_openai_tokenizer"));
  const auto strings = read_json(fixture("random_strings.json"));
  ASSERT_GE(strings.size(), 500u);
  int mismatches = 0;
  for (const auto& s : strings) {
    const std::string text = s["text"];
    const auto want = s["clip"].get<std::vector<int64_t>>();
    const auto got = tok.tokenize(text);
    if (got != want && ++mismatches <= 5)
      ADD_FAILURE() << "text " << nlohmann::json(text).dump() << ": got "
                    << nlohmann::json(got).dump() << ", transformers "
                    << nlohmann::json(want).dump();
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(CLIPTokenizer, SpecialTokensPaddingAndTruncation) {
  const auto tok = CLIPTokenizer::from_pretrained(fixture("clip_openai_tokenizer"));
  EXPECT_EQ(tok.bos_token_id(), 49406);
  EXPECT_EQ(tok.eos_token_id(), 49407);
  EXPECT_EQ(tok.pad_token_id(), 49407);  // FLUX's CLIP pads with <|endoftext|>
  EXPECT_EQ(tok.vocab_size(), 49408);

  const Encoding empty = tok.encode("");
  EXPECT_EQ(empty.length, 2);
  EXPECT_EQ(empty.input_ids.size(), 77u);
  EXPECT_EQ(empty.input_ids[0], 49406);
  for (size_t i = 1; i < 77; ++i) EXPECT_EQ(empty.input_ids[i], 49407);

  // "cat" is one token: 75 fit exactly (BOS + 75 + EOS = 77), the 76th is cut.
  std::string cats;
  for (int i = 0; i < 75; ++i) cats += "cat ";
  const Encoding full = tok.encode(cats);
  EXPECT_TRUE(full.truncated_ids.empty());
  EXPECT_EQ(full.length, 77);
  const Encoding over = tok.encode(cats + "dog");
  ASSERT_EQ(over.truncated_ids.size(), 1u);
  EXPECT_EQ(tok.decode(over.truncated_ids), "dog");
  EXPECT_EQ(over.input_ids.back(), 49407);
  EXPECT_EQ(over.input_ids[75], tok.tokenize("cat")[0]);

  // Another length, as a caller may ask.
  const Encoding short8 = tok.encode(cats, 8);
  EXPECT_EQ(short8.input_ids.size(), 8u);
  EXPECT_EQ(short8.truncated_ids.size(), 69u);
  EXPECT_THROW(tok.encode("a", 1), Error);
}

TEST(CLIPTokenizer, TruncationLogsFluxPipelinesWarning) {
  const auto tok = CLIPTokenizer::from_pretrained(fixture("clip_openai_tokenizer"));
  std::string text;
  for (int i = 0; i < 80; ++i) text += "cat ";
  ::testing::internal::CaptureStderr();
  tok.encode_batch({"a short prompt", text + "and a dog"});
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("The following part of your input was truncated because CLIP can only handle "
                     "sequences up to 77 tokens: ['cat cat cat cat cat and a dog']"),
            std::string::npos)
      << log;
}

TEST(CLIPTokenizer, DecodesAsTransformers) {
  const auto tok = CLIPTokenizer::from_pretrained(fixture("clip_openai_tokenizer"));
  const auto ids = tok.tokenize("Hello, café 東京 don't! 🚀");
  EXPECT_EQ(ids, (std::vector<int64_t>{3306, 267, 15304, 48338, 21078, 361, 847, 713, 256, 13542}));
  EXPECT_EQ(tok.decode(ids), "hello , café 東京 don 't ! 🚀");
  const auto hello = tok.encode("Hello", 3).input_ids;
  EXPECT_EQ(tok.decode(hello), "<|startoftext|>hello <|endoftext|>");
  EXPECT_EQ(tok.decode(hello, true), "hello");
}

TEST(CLIPTokenizer, RefusesInvalidUtf8) {
  const auto tok = CLIPTokenizer::from_pretrained(fixture("clip_tiny/tokenizer"));
  try {
    tok.tokenize("ok \xC3\x28 bad");
    FAIL() << "tokenized invalid UTF-8";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid UTF-8: bad byte sequence at byte 3"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(tok.tokenize("\xED\xA0\x80"), Error);  // a surrogate
  EXPECT_THROW(tok.tokenize("\xC0\xAF"), Error);      // overlong
}

// A copy of the small tokenizer folder that a test may change.
class ClipBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = dir_.file("tokenizer");
    fs::copy(fixture("clip_tiny/tokenizer"), folder_);
  }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(folder_ + "/" + name, std::ios::binary) << text;
  }
  std::string read(const std::string& name) {
    std::ifstream in(folder_ + "/" + name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  testing::TempDir dir_;
  std::string folder_;
};

TEST_F(ClipBadInput, MissingFolderAndFiles) {
  expect_load_error(dir_.file("nowhere"), "does not exist or is not a directory");
  fs::remove(folder_ + "/merges.txt");
  expect_load_error(folder_, "has no merges.txt");
  fs::remove(folder_ + "/vocab.json");
  expect_load_error(folder_, "has no vocab.json");
}

TEST_F(ClipBadInput, VocabularyThatIsNotAJsonObjectOfIds) {
  write("vocab.json", "{\"a\": 0, \"b\": ");
  expect_load_error(folder_, "vocab.json: invalid JSON");
  write("vocab.json", "[\"a\", \"b\"]");
  expect_load_error(folder_, "vocab.json: not a JSON object");
  write("vocab.json", "{\"a\": \"zero\"}");
  expect_load_error(folder_, "the id of token \"a\" must be an integer in [0, 2^31), got \"zero\"");
  write("vocab.json", "{\"a\": -1}");
  expect_load_error(folder_, "must be an integer");
  write("vocab.json", "{\"a\": 0, \"a\": 1}");
  expect_load_error(folder_, "duplicate key");
  write("vocab.json", "{}");
  expect_load_error(folder_, "the vocabulary is empty");
  write("vocab.json", "{\"a\": 0}");
  expect_load_error(folder_, "the unknown token '<|endoftext|>' is not in the vocabulary");
}

TEST_F(ClipBadInput, MergesWithABadLine) {
  const std::string merges = read("merges.txt");
  const size_t third = merges.find('\n', merges.find('\n', merges.find('\n') + 1) + 1);
  write("merges.txt", merges.substr(0, third + 1) + "i  n\n" + merges.substr(third + 1));
  expect_load_error(folder_,
                    "merges.txt: line 4: expected two tokens separated by one space, "
                    "got \"i  n\"");
  write("merges.txt", merges.substr(0, third + 1) + "\n" + merges.substr(third + 1));
  expect_load_error(folder_, "line 4: expected two tokens");
  write("merges.txt", merges.substr(0, third + 1) + "abc\n");
  expect_load_error(folder_, "line 4: expected two tokens separated by one space, got \"abc\"");
  write("merges.txt", "#version: 0.2\nq zzz\n");
  expect_load_error(folder_, "merges.txt: line 2: token \"zzz\" is not in");
  // CRLF line ends and a later "#version" line are accepted, as transformers accepts them.
  std::string crlf;
  for (char c : merges) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  write("merges.txt", crlf + "#version: 0.3\r\n");
  const auto tok = CLIPTokenizer::from_pretrained(folder_);
  EXPECT_EQ(tok.tokenize("a photo"),
            CLIPTokenizer::from_pretrained(fixture("clip_tiny/tokenizer")).tokenize("a photo"));
}

TEST_F(ClipBadInput, ConfigWithWrongTypes) {
  write("tokenizer_config.json", "{\"pad_token\": 5}");
  expect_load_error(folder_, "'pad_token' must be a string or an object with a string \"content\"");
  write("tokenizer_config.json", "{\"model_max_length\": \"77\"}");
  expect_load_error(folder_, "'model_max_length' must be a number");
  write("tokenizer_config.json", "{\"padding_side\": \"middle\"}");
  expect_load_error(folder_, "'padding_side' must be \"right\" or \"left\"");
  write("tokenizer_config.json", "{\"pad_token\": \"<pad>\"}");
  expect_load_error(folder_, "special token '<pad>' is neither in vocab.json nor among the added");
  write("tokenizer_config.json", "{\"added_tokens_decoder\": {\"x\": {\"content\": \"a\"}}}");
  expect_load_error(folder_, "added_tokens_decoder[\"x\"]: the key must be a token id");
  write("tokenizer_config.json", "not json");
  expect_load_error(folder_, "tokenizer_config.json: invalid JSON");
}

TEST_F(ClipBadInput, ConfigSettingsAreHonoured) {
  // A pad token of its own, left padding, another max length; the FLUX tokenizer uses none of
  // these, other CLIP tokenizers (Stable Diffusion 2's pads with "!") do.
  write("tokenizer_config.json",
        "{\"pad_token\": {\"content\": \"!\"}, \"padding_side\": \"left\", "
        "\"model_max_length\": 10}");
  const auto tok = CLIPTokenizer::from_pretrained(folder_);
  EXPECT_EQ(tok.pad_token_id(), 0);
  EXPECT_EQ(tok.model_max_length(), 10);
  const Encoding e = tok.encode("a");
  EXPECT_EQ(e.input_ids, (std::vector<int64_t>{0, 0, 0, 0, 0, 0, 0, 2512, 320, 2513}));
  write("tokenizer_config.json", "{\"model_max_length\": 1e30}");  // "no limit": CLIP's 77
  EXPECT_EQ(CLIPTokenizer::from_pretrained(folder_).model_max_length(), 77);
}

TEST_F(ClipBadInput, AddedTokensFromTokenizerJson) {
  // transformers prefers tokenizer.json's added tokens to the config's.
  write("tokenizer.json",
        R"({"added_tokens": [
          {"id": 2512, "content": "<|startoftext|>", "special": true, "normalized": false},
          {"id": 2513, "content": "<|endoftext|>", "special": true, "normalized": false},
          {"id": 2514, "content": "<NEW>", "special": false, "normalized": true},
          {"id": 2515, "content": "[x]", "special": true, "normalized": false, "lstrip": true,
           "rstrip": true}]})");
  const auto tok = CLIPTokenizer::from_pretrained(folder_);
  EXPECT_EQ(tok.vocab_size(), 2516);
  const auto a = tok.tokenize("a")[0], b = tok.tokenize("b")[0];
  // A normalized token is matched in the normalized (lowercased) text, its content normalized
  // too; "[x]" takes the whitespace around it (lstrip, rstrip). transformers gives the same ids.
  EXPECT_EQ(tok.tokenize("a <new> b"), (std::vector<int64_t>{a, 2514, b}));
  EXPECT_EQ(tok.tokenize("a <NEW> b"), (std::vector<int64_t>{a, 2514, b}));
  EXPECT_EQ(tok.tokenize("a   [x]   b"), (std::vector<int64_t>{a, 2515, b}));
  EXPECT_EQ(tok.tokenize("a[x]b"), (std::vector<int64_t>{a, 2515, b}));
  write("tokenizer.json", R"({"added_tokens": [{"id": "x", "content": "a"}]})");
  expect_load_error(folder_, "tokenizer.json: added_tokens[0]: token id must be an integer");
}

}  // namespace
}  // namespace paradiff::models::tokenizers
