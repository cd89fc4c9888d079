// Byte-level byte-pair encoding as GPT-2, CLIP and Qwen2 use it: a word's UTF-8 bytes become
// printable characters through a fixed table, each character starts as a symbol (the last one with
// an end-of-word suffix, "</w>" for CLIP), and adjacent symbols merge in the order the merges are
// listed, the lowest-ranked pair first and the leftmost first among equal ranks (the HuggingFace
// `tokenizers` BPE model with dropout off). The vocabulary and merges come from vocab.json +
// merges.txt or from tokenizer.json's "model" (see tokenizer_json.h).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace paradiff::models::tokenizers {

// GPT-2's table: printable ASCII and Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100..U+0143 in byte order.
char32_t byte_to_unicode(uint8_t byte);
// The inverse; -1 for a character outside the table.
int unicode_to_byte(char32_t c);

struct BpeOptions {
  std::string end_of_word_suffix;  // "</w>" for CLIP, "" for Qwen2
  // Stands for a character the vocabulary lacks; it must be in the vocabulary. Without one such a
  // character is dropped, as `tokenizers` does (Qwen2's vocabulary has every byte, so none is).
  std::optional<std::string> unk_token;
};

class BytePairEncoding {
 public:
  // vocab.json: one JSON object {"token": id}; merges.txt: one merge "left right" per line (lines
  // starting "#version" are skipped). Every merge's parts and their concatenation must be in the
  // vocabulary. Errors name the file, the line and the token.
  static BytePairEncoding load(const std::string& vocab_json, const std::string& merges_txt,
                               const BpeOptions& options);
  // The same from tokenizer.json's "model": `vocab` {"token": id} and `merges`, a list of
  // "left right" strings (older files) or of [left, right] pairs. `where` names the file for
  // messages ("<path>: model.vocab").
  static BytePairEncoding from_json(const nlohmann::json& vocab, const nlohmann::json& merges,
                                    const BpeOptions& options, const std::string& where);

  // Appends the ids of one word (raw UTF-8 bytes, at least one) to `out`.
  void encode_word(std::string_view word, std::vector<int64_t>& out) const;

  int64_t token_to_id(std::string_view token) const;  // -1 when absent
  // The token of an id, or nullptr when no token has it.
  const std::string* id_to_token(int64_t id) const;
  int64_t vocab_size() const { return static_cast<int64_t>(id_to_token_.size()); }  // max id + 1
  size_t num_merges() const { return merges_.size(); }
  int64_t unk_id() const { return unk_id_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int64_t a, int64_t b) {
    return (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b);
  }
  // Reads the {"token": id} object; `where` names it in messages.
  void set_vocab(const nlohmann::json& root, const std::string& where);
  // The byte symbols and the unknown token, once the vocabulary is known.
  void set_symbols(const BpeOptions& options, const std::string& where);
  // Appends one merge; the error names `where` (file and line or list index).
  void add_merge(std::string_view left, std::string_view right, const std::string& where,
                 const std::string& vocab_name);

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;  // "" where no token has the id
  std::vector<bool> id_used_;
  std::unordered_map<uint64_t, Merge> merges_;
  int32_t byte_id_[256];      // the byte's character as a symbol, -1 when not in the vocabulary
  int32_t byte_end_id_[256];  // the same with the end-of-word suffix
  int32_t unk_id_ = -1;
  int32_t next_rank_ = 0;
};

}  // namespace paradiff::models::tokenizers
