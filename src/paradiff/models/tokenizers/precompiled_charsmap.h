// SentencePiece's normalizer as a "precompiled charsmap" (the normalizer_spec of a .model file,
// and the "Precompiled" normalizer of tokenizer.json, base64): a Darts double-array trie over
// UTF-8 keys whose values are offsets of NUL-terminated replacement strings. T5's is nmt_nfkc
// (NFKC plus SentencePiece's own rules).
//
// It is applied as the HuggingFace `tokenizers` library applies it, which transformers 5 runs for
// T5: text is cut into extended grapheme clusters (ICU's); a cluster shorter than 6 bytes is
// replaced by the replacement of the SHORTEST trie key that is a prefix of it, when there is one
// (the rest of the cluster is dropped then: "½" + U+0308 -> "1⁄2"); otherwise each of its code
// points is replaced on its own the same way, or kept.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace paradiff::models::tokenizers {

class PrecompiledCharsmap {
 public:
  // `blob`: little-endian u32 trie size in bytes (a multiple of 4), the trie's u32 units, then the
  // replacement strings (valid UTF-8). `where` names the source for messages.
  static PrecompiledCharsmap parse(std::string_view blob, const std::string& where);

  std::u32string normalize(std::u32string_view text) const;

 private:
  // The replacement of the shortest key that is a prefix of `bytes`, or nothing.
  std::optional<std::string_view> transform(std::string_view bytes) const;

  std::vector<uint32_t> trie_;
  std::string normalized_;
};

}  // namespace paradiff::models::tokenizers
