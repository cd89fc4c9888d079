// T5's tokenizer as transformers (5.x) runs it for FluxPipeline's `tokenizer_2`
// (T5TokenizerFast): the SentencePiece unigram model of spiece.model inside transformers'
// pipeline:
//   1. added tokens ("<pad>", "</s>", "<unk>", "<extra_id_N>") are found in the raw text first
//      and become their ids;
//   2. the text in between is split at whitespace (Unicode White_Space); each word is
//      normalized by the model's own normalizer (NFKC-based "nmt_nfkc" for T5, run by Debian's
//      libsentencepiece) and starts with "▁" (transformers' WhitespaceSplit + Metaspace with
//      prepend_scheme="always"; the `legacy` flag of older configs no longer changes anything);
//   3. each word is segmented by the unigram model's best path (Viterbi) over the model's pieces
//      and scores, with the `tokenizers` library's rules: among equal scores the path found first
//      wins, and consecutive unknown characters become one "<unk>". This is done here rather than
//      by libsentencepiece, whose Debian version (0.1.97) breaks such ties the other way
//      ("1,000,000" -> ",", "00", "0" instead of ",", "0", "00");
//   4. EOS "</s>" is appended; truncation and padding (pad id from the config, 0 for T5) as
//      FluxPipeline asks: padding="max_length", max_length=max_sequence_length, truncation=True.
//
// Known difference: transformers applies the normalization to whole grapheme clusters before
// splitting at whitespace, libsentencepiece to each word's code points. They disagree only on a
// combining mark that starts a word or follows a compatibility character ("½" + U+0308), and on
// U+200D / U+FEFF next to such marks; no ordinary prompt has these.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "paradiff/models/tokenizers/added_tokens.h"
#include "paradiff/models/tokenizers/encoding.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace paradiff::models::tokenizers {

class T5Tokenizer {
 public:
  // A transformers T5 tokenizer folder (FluxPipeline's `tokenizer_2/`): spiece.model, optionally
  // tokenizer_config.json / special_tokens_map.json / tokenizer.json (for the added tokens, pad
  // and eos).
  static T5Tokenizer from_pretrained(const std::string& folder);

  // The ids of the text's tokens: no EOS, no truncation, no padding.
  std::vector<int64_t> tokenize(std::string_view text) const;
  // tokens + EOS, truncated to max_length (the text's last tokens go) and padded to it.
  Encoding encode(std::string_view text, int64_t max_length) const;
  // encode() for each prompt, as an I64 (B, max_length) tensor; logs FluxPipeline's warning for
  // each prompt that truncation shortened.
  Tensor encode_batch(const std::vector<std::string>& prompts, int64_t max_length) const;
  // Ids back to text ("▁" -> space, the leading one dropped; added tokens as their content).
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;

  int64_t eos_token_id() const { return eos_id_; }
  int64_t pad_token_id() const { return pad_id_; }
  int64_t unk_token_id() const { return unk_id_; }
  int64_t model_max_length() const { return model_max_length_; }
  // One more than the largest id the tokenizer can produce (SentencePiece pieces and added
  // tokens).
  int64_t vocab_size() const;
  const AddedVocabulary& added_tokens() const { return added_; }

 private:
  T5Tokenizer() = default;
  // Appends the ids of one whitespace-free word (UTF-8) to `out`.
  void encode_word(const std::string& word, std::vector<int64_t>& out) const;

  struct Piece {
    int32_t id;
    double score;
  };
  std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp_;  // shared: copies are cheap
  // The pieces the unigram model may produce (normal and user-defined ones), by their text.
  std::shared_ptr<const std::unordered_map<std::string, Piece>> pieces_;
  size_t max_piece_bytes_ = 0;
  double unk_score_ = 0;  // the lowest piece score minus 10, as SentencePiece and tokenizers use
  std::string path_;      // spiece.model, for messages
  AddedVocabulary added_;
  int64_t eos_id_ = -1, pad_id_ = -1, unk_id_ = -1;
  int64_t model_max_length_ = 512;
  bool pad_left_ = false;
};

}  // namespace paradiff::models::tokenizers
