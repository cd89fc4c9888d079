// Added tokens ("<|endoftext|>", "</s>", "<extra_id_0>", ...): strings that transformers'
// tokenizers backend finds in the text before the model's own tokenization sees it, each
// becoming its id directly. Tokens marked `normalized` are looked for in the normalized text,
// the others in the raw text, as the HuggingFace `tokenizers` library does:
//   1. split the raw text at the non-normalized tokens (leftmost, then longest match);
//   2. normalize each piece in between;
//   3. split each normalized piece at the normalized tokens (whose content is normalized too).
// `single_word` is not supported (no FLUX tokenizer sets it); it is read as false.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace paradiff::models::tokenizers {

struct AddedToken {
  std::string content;  // UTF-8
  int64_t id = -1;
  bool special = true;
  bool normalized = false;
  bool lstrip = false;  // the match takes the whitespace on its left with it
  bool rstrip = false;  // ... and on its right
};

// A piece of text after the split: an added token's id, or text for the model to tokenize.
struct TextSegment {
  int64_t id = -1;      // >= 0: an added token
  std::u32string text;  // when id < 0: normalized text
};

// Maps raw text to normalized text; empty for a tokenizer whose normalizer is part of its model
// (then normalized text is the raw text).
using Normalizer = std::function<std::u32string(std::u32string_view)>;

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  // Tokens with empty content are refused; a content listed twice keeps the last id.
  AddedVocabulary(std::vector<AddedToken> tokens, Normalizer normalize = {});

  bool empty() const { return tokens_.empty(); }
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  // The id of an added token's content, or -1.
  int64_t find(std::string_view content) const;
  // The content of an added token's id, or nullptr.
  const AddedToken* by_id(int64_t id) const;

  // Splits `text` as described above. Empty text pieces are dropped.
  std::vector<TextSegment> split(std::u32string_view text) const;

 private:
  struct Pattern {
    std::u32string content;
    AddedToken token;  // a copy, so that copies of the vocabulary stay self-contained
  };
  // Splits at the patterns of one kind, appending to `out`.
  static void split_at(std::u32string_view text, const std::vector<Pattern>& patterns,
                       std::vector<TextSegment>& out);

  std::vector<AddedToken> tokens_;
  Normalizer normalize_;
  std::vector<Pattern> raw_, normalized_;  // longest first
};

}  // namespace paradiff::models::tokenizers
