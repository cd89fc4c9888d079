// CLIP and T5 tokenizers from tokenizer.json (the format transformers 5 saves) against
// transformers' own ids (tests/fixtures/tokenizers, made by
// tools/make_fixtures/make_tokenizer_fixtures.py): every corpus string, FluxPipeline's padded
// calls, the legacy folders of the same tokenizers giving the same ids, transformers 5 ignoring a
// declared pipeline that differs from the class's; and what a damaged file must be refused with.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "paradiff/core/error.h"
#include "paradiff/io/base64.h"
#include "paradiff/models/tokenizers/clip_tokenizer.h"
#include "paradiff/models/tokenizers/precompiled_charsmap.h"
#include "paradiff/models/tokenizers/t5_tokenizer.h"
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

std::vector<std::string> corpus() {
  return cases()["corpus"].get<std::vector<std::string>>();
}

// Compares tokenize() with transformers' ids for every corpus string; reports the first few.
template <typename Tokenizer>
void expect_corpus_ids(const Tokenizer& tok, const std::string& key) {
  const auto texts = corpus();
  const auto& want = cases()["tokenize"][key];
  ASSERT_EQ(want.size(), texts.size());
  ASSERT_GE(texts.size(), 450u);
  int mismatches = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto got = tok.tokenize(texts[i]);
    if (got != want[i].get<std::vector<int64_t>>() && ++mismatches <= 5)
      ADD_FAILURE() << key << " string " << i << " " << nlohmann::json(texts[i]).dump() << ": got "
                    << nlohmann::json(got).dump() << ", transformers " << want[i].dump();
  }
  EXPECT_EQ(mismatches, 0) << "of " << texts.size();
}

std::vector<std::string> prompts() {
  const auto texts = corpus();
  return {texts.begin(), texts.begin() + cases()["num_prompts"].get<int64_t>()};
}

std::vector<std::vector<int64_t>> rows(const Tensor& t) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t r = 0; r < t.dim(0); ++r)
    out.emplace_back(t.data<int64_t>() + r * t.dim(1), t.data<int64_t>() + (r + 1) * t.dim(1));
  return out;
}

template <typename Tokenizer>
void expect_load_error(const std::string& folder, const std::string& needle) {
  try {
    Tokenizer::from_pretrained(folder);
    FAIL() << "loaded, expected an error containing: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TokenizerJson, ClipIdsMatchTransformers) {
  const auto tok = CLIPTokenizer::from_pretrained(fixture("clip_json"));
  expect_corpus_ids(tok, "clip_json");
  EXPECT_EQ(tok.bos_token_id(), 2512);
  EXPECT_EQ(tok.eos_token_id(), 2513);
  EXPECT_EQ(tok.model_max_length(), 77);
  const auto want = cases()["flux"]["clip_json"].get<std::vector<std::vector<int64_t>>>();
  ::testing::internal::CaptureStderr();  // the long prompt's truncation warning
  EXPECT_EQ(rows(tok.encode_batch(prompts())), want);
  ::testing::internal::GetCapturedStderr();
}

TEST(TokenizerJson, ClipLegacyFilesGiveTheSameIds) {
  // The folder the tokenizer.json was saved from (vocab.json + merges.txt).
  const auto tok = CLIPTokenizer::from_pretrained(
      testing::source_path("tests/fixtures/text_encoders/clip_tiny/tokenizer"));
  expect_corpus_ids(tok, "clip_json");
}

TEST(TokenizerJson, T5IdsMatchTransformers) {
  const auto tok = T5Tokenizer::from_pretrained(fixture("t5_json"));
  expect_corpus_ids(tok, "t5_json");
  EXPECT_EQ(tok.eos_token_id(), 1);
  EXPECT_EQ(tok.pad_token_id(), 0);
  EXPECT_EQ(tok.unk_token_id(), 2);
  EXPECT_EQ(tok.vocab_size(), 1100);
  for (int64_t n : {32, 512}) {
    const auto want =
        cases()["flux"][str_cat("t5_json_", n)].get<std::vector<std::vector<int64_t>>>();
    ::testing::internal::CaptureStderr();
    EXPECT_EQ(rows(tok.encode_batch(prompts(), n)), want) << "max_sequence_length " << n;
    ::testing::internal::GetCapturedStderr();
  }
  EXPECT_EQ(tok.decode(tok.tokenize("a red cat on mars")), "a red cat on mars");
}

// The bundled model's tokenizer folders hold tokenizer.json and the legacy files, like FLUX.1's;
// transformers reads tokenizer.json, and so does paradiff. The legacy files alone give the same
// ids (transformers builds the same pipeline from them).
TEST(TokenizerJson, BundledModelBothFormatsMatchTransformers) {
  const std::string model = testing::source_path("models/tiny-flux-shapes");
  if (!fs::exists(model + "/tokenizer_2")) GTEST_SKIP() << model << " is not there";
  expect_corpus_ids(CLIPTokenizer::from_pretrained(model + "/tokenizer"), "bundled_clip");
  expect_corpus_ids(T5Tokenizer::from_pretrained(model + "/tokenizer_2"), "bundled_t5");

  testing::TempDir dir;
  for (const char* sub : {"tokenizer", "tokenizer_2"}) {
    fs::copy(model + "/" + sub, dir.file(sub));
    fs::remove(dir.file(sub) + "/tokenizer.json");
  }
  expect_corpus_ids(CLIPTokenizer::from_pretrained(dir.file("tokenizer")), "bundled_clip");
  expect_corpus_ids(T5Tokenizer::from_pretrained(dir.file("tokenizer_2")), "bundled_t5");
}

// A copy of a fixture folder that a test may change.
class TokenizerJsonFolder : public ::testing::Test {
 protected:
  void use(const std::string& name) {
    folder_ = dir_.file(name);
    fs::copy(fixture(name), folder_);
    json_ = read_json(folder_ + "/tokenizer.json");
  }
  void write_json(const nlohmann::json& j) { write("tokenizer.json", j.dump()); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(folder_ + "/" + name, std::ios::binary) << text;
  }
  testing::TempDir dir_;
  std::string folder_;
  nlohmann::json json_;
};

TEST_F(TokenizerJsonFolder, T5DeclaredPipelineOfTransformers4IsIgnoredAsTransformers5Does) {
  // transformers 4 wrote T5's tokenizer.json with Strip + Replace in the normalizer and Metaspace
  // alone as pre-tokenizer; transformers 5 builds T5Tokenizer's own pipeline and takes only the
  // charsmap (checked by the fixture script), so the ids stay the same.
  use("t5_json");
  json_["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       {json_["normalizer"],
        {{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}},
        {{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", "\u2581"}}}}};
  json_["pre_tokenizer"] = {{"type", "Metaspace"},
                            {"replacement", "\u2581"},
                            {"prepend_scheme", "always"},
                            {"split", true}};
  write_json(json_);
  expect_corpus_ids(T5Tokenizer::from_pretrained(folder_), "t5_json");
}

TEST_F(TokenizerJsonFolder, PrefersTokenizerJsonToLegacyFiles) {
  // A folder with both: transformers uses tokenizer.json. Here the legacy files are garbage, so
  // loading succeeds only if they are not read.
  use("clip_json");
  write("vocab.json", "not json");
  write("merges.txt", "x");
  EXPECT_EQ(CLIPTokenizer::from_pretrained(folder_).tokenize("a photo of a cat"),
            CLIPTokenizer::from_pretrained(fixture("clip_json")).tokenize("a photo of a cat"));
  use("t5_json");
  write("spiece.model", "not a model");
  EXPECT_EQ(T5Tokenizer::from_pretrained(folder_).tokenize("a photo of a cat").size(),
            T5Tokenizer::from_pretrained(fixture("t5_json")).tokenize("a photo of a cat").size());
}

TEST_F(TokenizerJsonFolder, RefusesTruncatedOrGarbageFiles) {
  use("clip_json");
  const std::string text = json_.dump();
  write("tokenizer.json", text.substr(0, text.size() / 2));
  expect_load_error<CLIPTokenizer>(folder_, "tokenizer.json: invalid JSON");
  write("tokenizer.json", "\x89PNG\r\n\x1a\n garbage");
  expect_load_error<CLIPTokenizer>(folder_, "tokenizer.json: invalid JSON");
  write("tokenizer.json", "[1, 2]");
  expect_load_error<CLIPTokenizer>(folder_, "tokenizer.json: not a JSON object");
  write("tokenizer.json", "");
  expect_load_error<CLIPTokenizer>(folder_, "tokenizer.json: invalid JSON");
}

TEST_F(TokenizerJsonFolder, RefusesUnknownModelAndComponentTypes) {
  use("clip_json");
  nlohmann::json j = json_;
  j["model"]["type"] = "WordPiece";
  write_json(j);
  expect_load_error<CLIPTokenizer>(
      folder_, "tokenizer.json: model.type is \"WordPiece\"; CLIPTokenizer needs a \"BPE\" model");
  j = json_;
  j["model"].erase("type");
  write_json(j);
  expect_load_error<CLIPTokenizer>(folder_, "tokenizer.json: model.type must be a string");
  j = json_;
  j["model"] = 7;
  write_json(j);
  expect_load_error<CLIPTokenizer>(folder_, "tokenizer.json: \"model\" must be an object");
  j = json_;
  j["normalizer"]["normalizers"][1] = {{"type", "BertNormalizer"}};
  write_json(j);
  expect_load_error<CLIPTokenizer>(folder_,
                                   "tokenizer.json: normalizer.normalizers[1].type "
                                   "\"BertNormalizer\" is not supported");
  j = json_;
  j["pre_tokenizer"] = {{"type", "Digits"}, {"individual_digits", true}};
  write_json(j);
  expect_load_error<CLIPTokenizer>(
      folder_, "tokenizer.json: pre_tokenizer.type \"Digits\" is not supported");
  j = json_;
  j["decoder"] = {{"type", "WordPiece"}};
  write_json(j);
  expect_load_error<CLIPTokenizer>(folder_, "decoder.type \"WordPiece\" is not supported");
  j = json_;
  j["post_processor"] = {{"type", "BertProcessing"}};
  write_json(j);
  expect_load_error<CLIPTokenizer>(folder_, "post_processor.type \"BertProcessing\"");
  j = json_;
  j["normalizer"] = "NFC";
  write_json(j);
  expect_load_error<CLIPTokenizer>(
      folder_, "tokenizer.json: normalizer must be null or an object with a string \"type\"");
  // T5 needs a Unigram model.
  write_json(json_);
  expect_load_error<T5Tokenizer>(folder_, "model.type is \"BPE\"; T5Tokenizer needs a \"Unigram\"");
}

TEST_F(TokenizerJsonFolder, RefusesBadBpeModels) {
  use("clip_json");
  nlohmann::json j = json_;
  j["model"].erase("merges");
  write_json(j);
  expect_load_error<CLIPTokenizer>(folder_, "tokenizer.json: model.merges is missing");
  j = json_;
  j["model"]["merges"][3] = {"i", "zzz"};
  write_json(j);
  expect_load_error<CLIPTokenizer>(folder_,
                                   "tokenizer.json: model.merges[3]: token \"zzz\" is not in");
  j["model"]["merges"][3] = "i  n";
  write_json(j);
  expect_load_error<CLIPTokenizer>(
      folder_, "model.merges[3]: expected two tokens separated by one space, got \"i  n\"");
  j["model"]["merges"][3] = {"i"};
  write_json(j);
  expect_load_error<CLIPTokenizer>(folder_, "model.merges[3]: expected a pair of token strings");
  j = json_;
  j["model"]["vocab"]["a"] = "zero";
  write_json(j);
  expect_load_error<CLIPTokenizer>(
      folder_, "tokenizer.json: model.vocab: the id of token \"a\" must be an integer");
  j["model"]["vocab"] = nlohmann::json::array();
  write_json(j);
  expect_load_error<CLIPTokenizer>(folder_, "model.vocab: the vocabulary must be a JSON object");
  j["model"]["vocab"] = {{"a", 1ll << 30}};
  write_json(j);
  expect_load_error<CLIPTokenizer>(folder_, "has id 1073741824, far beyond the vocabulary's 1");
  // Older files write merges as "left right" strings: accepted.
  j = json_;
  for (auto& m : j["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  write_json(j);
  EXPECT_EQ(CLIPTokenizer::from_pretrained(folder_).tokenize("a photo of a cat"),
            CLIPTokenizer::from_pretrained(fixture("clip_json")).tokenize("a photo of a cat"));
}

TEST_F(TokenizerJsonFolder, RefusesBadUnigramModelsAndCharsmaps) {
  use("t5_json");
  nlohmann::json j = json_;
  j["model"]["vocab"][5] = {"x"};
  write_json(j);
  expect_load_error<T5Tokenizer>(folder_,
                                 "tokenizer.json: model.vocab[5] must be [piece, finite score]");
  j["model"]["vocab"] = nlohmann::json::array();
  write_json(j);
  expect_load_error<T5Tokenizer>(folder_, "tokenizer.json: model.vocab is empty");
  j = json_;
  j["normalizer"]["precompiled_charsmap"] = "not base64!";
  write_json(j);
  expect_load_error<T5Tokenizer>(folder_, "normalizer.precompiled_charsmap: not base64");
  j["normalizer"]["precompiled_charsmap"] = "AAAA";  // three zero bytes
  write_json(j);
  expect_load_error<T5Tokenizer>(folder_, "fewer than its 4-byte header");
  j["normalizer"]["precompiled_charsmap"] = "/////w==";  // a trie size beyond the data
  write_json(j);
  expect_load_error<T5Tokenizer>(folder_, "must be a multiple of 4 within its 0 bytes");
  j["normalizer"]["precompiled_charsmap"] = 3;
  write_json(j);
  expect_load_error<T5Tokenizer>(folder_,
                                 "normalizer.precompiled_charsmap must be a base64 string");
  // Without a charsmap, transformers' T5Tokenizer has no normalizer: the text goes as it is.
  j = json_;
  j["normalizer"] = nullptr;
  write_json(j);
  const auto plain = T5Tokenizer::from_pretrained(folder_);
  const auto full = T5Tokenizer::from_pretrained(fixture("t5_json"));
  EXPECT_EQ(plain.tokenize("a cat"), full.tokenize("a cat"));
  EXPECT_NE(plain.tokenize("ＡＢ"), full.tokenize("ＡＢ"));  // NFKC would fold these
}

TEST(TokenizerJson, MissingModelFilesAreNamed) {
  testing::TempDir dir;
  const std::string folder = dir.file("empty");
  fs::create_directory(folder);
  expect_load_error<CLIPTokenizer>(folder, "has no vocab.json (it needs tokenizer.json, or");
  expect_load_error<T5Tokenizer>(folder, "has neither tokenizer.json nor spiece.model");
}

TEST(TokenizerJson, PrecompiledCharsmapNormalizesGraphemeClustersAsTransformers) {
  // T5's charsmap (nmt_nfkc) from the fixture: compatibility characters fold, a decomposed accent
  // composes, and a cluster whose first character has a replacement loses the rest (the
  // reference's behaviour, kept on purpose).
  const auto j = read_json(fixture("t5_json/tokenizer.json"));
  const auto blob = base64_decode(j["normalizer"]["precompiled_charsmap"].get<std::string>(), "t");
  const auto m = PrecompiledCharsmap::parse(blob, "t");
  EXPECT_EQ(encode_utf8(m.normalize(U"ＡＢｃ ①")), "ABc 1");
  EXPECT_EQ(encode_utf8(m.normalize(U"cafe\u0301")), "caf\u00e9");
  EXPECT_EQ(encode_utf8(m.normalize(U"\u00bd\u0308")), "1\u20442");
  EXPECT_EQ(encode_utf8(m.normalize(U"plain text")), "plain text");
}

TEST(TokenizerJson, Base64DecodesAndRefuses) {
  EXPECT_EQ(base64_decode("", "x"), "");
  EXPECT_EQ(base64_decode("TWFu", "x"), "Man");
  EXPECT_EQ(base64_decode("TWE=", "x"), "Ma");
  EXPECT_EQ(base64_decode("TQ==", "x"), "M");
  EXPECT_THROW(base64_decode("TQ=", "x"), Error);
  EXPECT_THROW(base64_decode("T=Q=", "x"), Error);
  EXPECT_THROW(base64_decode("TQ==TWFu", "x"), Error);
  EXPECT_THROW(base64_decode("T\xffQ=", "x"), Error);
}

}  // namespace
}  // namespace paradiff::models::tokenizers
