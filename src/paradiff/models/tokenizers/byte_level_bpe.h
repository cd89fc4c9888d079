// Byte-level byte-pair encoding as GPT-2 and CLIP use it: a word's UTF-8 bytes become printable
// characters through a fixed table, each character starts as a symbol (the last one with an
// end-of-word suffix, "</w>" for CLIP), and adjacent symbols merge in the order merges.txt lists
// the pairs, the lowest-ranked pair first and the leftmost first among equal ranks (the
// HuggingFace `tokenizers` BPE model with dropout off).
#pragma once

#include <cstdint>
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

class BytePairEncoding {
 public:
  // vocab.json: one JSON object {"token": id}; merges.txt: one merge "left right" per line (lines
  // starting "#version" are skipped). Every merge's parts and their concatenation must be in the
  // vocabulary. `unk_token` stands for a character the vocabulary lacks; it must be in the
  // vocabulary. Errors name the file, the line and the token.
  static BytePairEncoding load(const std::string& vocab_json, const std::string& merges_txt,
                               const std::string& end_of_word_suffix, const std::string& unk_token);

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

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;  // "" where no token has the id
  std::vector<bool> id_used_;
  std::unordered_map<uint64_t, Merge> merges_;
  int32_t byte_id_[256];      // the byte's character as a symbol, -1 when not in the vocabulary
  int32_t byte_end_id_[256];  // the same with the end-of-word suffix
  int32_t unk_id_ = -1;
};

}  // namespace paradiff::models::tokenizers
