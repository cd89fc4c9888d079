#include "paradiff/models/tokenizers/tokenizer_json.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "paradiff/core/error.h"
#include "paradiff/io/base64.h"
#include "paradiff/models/tokenizers/precompiled_charsmap.h"

namespace paradiff::models::tokenizers {

namespace {

using nlohmann::json;

// One declared component kind: the key of its list in a "Sequence", and the types accepted.
struct ComponentKind {
  const char* key;           // "normalizer"
  const char* sequence_key;  // "normalizers"
  std::set<std::string> types;
};

const ComponentKind kNormalizer{
    "normalizer", "normalizers", {"NFC", "NFKC", "Lowercase", "Replace", "Precompiled", "Strip"}};
const ComponentKind kPreTokenizer{
    "pre_tokenizer", "pretokenizers", {"Split", "ByteLevel", "WhitespaceSplit", "Metaspace"}};
const ComponentKind kPostProcessor{
    "post_processor", "processors", {"RobertaProcessing", "TemplateProcessing", "ByteLevel"}};
const ComponentKind kDecoder{
    "decoder", "decoders", {"ByteLevel", "BPEDecoder", "Metaspace", "Replace", "Strip", "Fuse"}};

std::string known_types(const ComponentKind& kind) {
  std::string out = "Sequence";
  for (const std::string& t : kind.types) out += ", " + t;
  return out;
}

// Checks a declared component (null, or {"type": ...}); calls `visit` on every leaf.
template <typename Visit>
void check_component(const json& v, const std::string& where, const ComponentKind& kind,
                     const std::string& file, Visit&& visit, int depth = 0) {
  if (v.is_null()) return;
  PARADIFF_CHECK(v.is_object() && v.contains("type") && v["type"].is_string(), file, ": ", where,
                 " must be null or an object with a string \"type\", got ", json_excerpt(v));
  const std::string& type = v["type"].get_ref<const std::string&>();
  if (type == "Sequence") {
    PARADIFF_CHECK(depth < 8, file, ": ", where, ": Sequences nested too deeply");
    PARADIFF_CHECK(v.contains(kind.sequence_key) && v[kind.sequence_key].is_array(), file, ": ",
                   where, ".", kind.sequence_key, " must be a list");
    const json& list = v[kind.sequence_key];
    for (size_t i = 0; i < list.size(); ++i)
      check_component(list[i], str_cat(where, ".", kind.sequence_key, "[", i, "]"), kind, file,
                      visit, depth + 1);
    return;
  }
  PARADIFF_CHECK(kind.types.count(type) > 0, file, ": ", where, ".type \"", type,
                 "\" is not supported (paradiff reads the ", kind.key,
                 " kinds of CLIP, T5 and Qwen2 tokenizers: ", known_types(kind), ")");
  visit(v, where);
}

std::vector<Unigram::Piece> read_unigram_vocab(const json& vocab, const std::string& where) {
  PARADIFF_CHECK(vocab.is_array(), where, ": model.vocab must be a list of [piece, score], got ",
                 json_excerpt(vocab));
  PARADIFF_CHECK(!vocab.empty(), where, ": model.vocab is empty");
  std::vector<Unigram::Piece> pieces;
  pieces.reserve(vocab.size());
  for (size_t i = 0; i < vocab.size(); ++i) {
    const json& e = vocab[i];
    PARADIFF_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_number() &&
                       std::isfinite(e[1].get<double>()),
                   where, ": model.vocab[", i, "] must be [piece, finite score], got ",
                   json_excerpt(e));
    pieces.push_back({e[0].get<std::string>(), e[1].get<double>(), static_cast<int64_t>(i)});
  }
  return pieces;
}

}  // namespace

TokenizerJsonModel read_tokenizer_json(const JsonConfig& file, const std::string& tokenizer_class,
                                       const std::string& model_type,
                                       const BpeOptions& bpe_options) {
  const std::string& path = file.name();
  const json& root = file.root();
  PARADIFF_CHECK(root.is_object(), path, ": not a JSON object");
  TokenizerJsonModel out;

  for (const ComponentKind* kind : {&kNormalizer, &kPreTokenizer, &kPostProcessor, &kDecoder}) {
    if (!root.contains(kind->key)) continue;
    check_component(
        root[kind->key], kind->key, *kind, path, [&](const json& v, const std::string& where) {
          if (kind != &kNormalizer || v["type"] != "Precompiled") return;
          const std::string at = str_cat(path, ": ", where, ".precompiled_charsmap");
          PARADIFF_CHECK(
              v.contains("precompiled_charsmap") && v["precompiled_charsmap"].is_string(), at,
              " must be a base64 string");
          if (out.precompiled_charsmap) return;  // transformers takes the first
          out.precompiled_charsmap =
              base64_decode(v["precompiled_charsmap"].get_ref<const std::string&>(), at);
          PrecompiledCharsmap::parse(*out.precompiled_charsmap, at);  // check it
        });
  }

  PARADIFF_CHECK(root.contains("model") && root["model"].is_object(), path,
                 ": \"model\" must be an object (the tokenizer's vocabulary), got ",
                 root.contains("model") ? json_excerpt(root["model"]) : std::string("nothing"));
  const json& model = root["model"];
  PARADIFF_CHECK(model.contains("type") && model["type"].is_string(), path,
                 ": model.type must be a string, got ",
                 model.contains("type") ? json_excerpt(model["type"]) : std::string("nothing"));
  out.type = model["type"].get<std::string>();
  PARADIFF_CHECK(out.type == model_type, path, ": model.type is \"", out.type, "\"; ",
                 tokenizer_class, " needs a \"", model_type, "\" model");
  PARADIFF_CHECK(model.contains("vocab"), path, ": model.vocab is missing");
  if (out.type == "BPE") {
    PARADIFF_CHECK(model.contains("merges"), path, ": model.merges is missing");
    out.bpe = std::make_shared<const BytePairEncoding>(
        BytePairEncoding::from_json(model["vocab"], model["merges"], bpe_options, path));
  } else {
    PARADIFF_ASSERT(out.type == "Unigram");
    out.unigram_pieces = read_unigram_vocab(model["vocab"], path);
  }
  return out;
}

}  // namespace paradiff::models::tokenizers
