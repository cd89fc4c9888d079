// T5's tokenizer as transformers (5.x) runs it for FluxPipeline's `tokenizer_2` (T5Tokenizer,
// backed by `tokenizers`), from either save format, which transformers turns into the same
// pipeline:
//   - tokenizer.json (what transformers 5 saves, and what it prefers when a folder has both):
//     the Unigram model's pieces and scores and the Precompiled normalizer's charsmap, read as
//     tokenizer_json.h describes;
//   - spiece.model (older folders, FLUX.1's): every piece with its score and the
//     normalizer_spec's charsmap, read with Debian's libsentencepiece (which normalizes and
//     segments nothing here: its 0.1.97 breaks unigram ties the other way, and normalizes code
//     points rather than grapheme clusters).
// The pipeline:
//   1. added tokens ("<pad>", "</s>", "<unk>", "<extra_id_N>") are found in the raw text first
//      and become their ids;
//   2. the text in between is normalized by the charsmap (NFKC-based "nmt_nfkc" for T5), grapheme
//      cluster by cluster (precompiled_charsmap.h);
//   3. split at whitespace (Unicode White_Space); each word starts with "▁" and is cut again
//      before every "▁" inside it (transformers' WhitespaceSplit + Metaspace with
//      prepend_scheme="always"; the `legacy` flag of older configs no longer changes anything);
//   4. each piece is segmented by the unigram model over every piece of the vocabulary, the
//      unknown piece being id 2 (unigram.h);
//   5. EOS "</s>" is appended; truncation and padding (pad id from the config, 0 for T5) as
//      FluxPipeline asks: padding="max_length", max_length=max_sequence_length, truncation=True.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "paradiff/models/tokenizers/added_tokens.h"
#include "paradiff/models/tokenizers/encoding.h"
#include "paradiff/models/tokenizers/precompiled_charsmap.h"
#include "paradiff/models/tokenizers/unigram.h"

namespace paradiff::models::tokenizers {

class T5Tokenizer {
 public:
  // A transformers T5 tokenizer folder (FluxPipeline's `tokenizer_2/`): tokenizer.json or
  // spiece.model (tokenizer.json when it has both, as transformers), optionally
  // tokenizer_config.json / special_tokens_map.json (pad, eos, added tokens).
  static T5Tokenizer from_pretrained(const std::string& folder);

  // The ids of the text's tokens: no EOS, no truncation, no padding.
  std::vector<int64_t> tokenize(std::string_view text) const;
  // tokens + EOS, truncated to max_length (the text's last tokens go) and padded to it.
  Encoding encode(std::string_view text, int64_t max_length) const;
  // encode() for each prompt, as an I64 (B, max_length) tensor; logs FluxPipeline's warning for
  // each prompt that truncation shortened.
  Tensor encode_batch(const std::vector<std::string>& prompts, int64_t max_length) const;
  // Ids back to text ("▁" -> space, the leading one dropped; added tokens as their content).
  // Meant for messages: transformers' clean-up of spaces before punctuation is not done.
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
  // Appends the ids of one whitespace-free word of normalized text to `out`.
  void encode_word(std::u32string_view word, std::vector<int64_t>& out) const;

  // Normalizes the text; null when the model has no charsmap (then transformers has no normalizer).
  std::shared_ptr<const PrecompiledCharsmap> charsmap_;  // shared: copies are cheap
  std::shared_ptr<const Unigram> unigram_;
  std::shared_ptr<const std::vector<std::string>> pieces_;  // by id, for decode()
  std::string path_;                                        // the model's file, for messages
  AddedVocabulary added_;
  int64_t eos_id_ = -1, pad_id_ = -1, unk_id_ = -1;
  int64_t model_max_length_ = 512;
  bool pad_left_ = false;
};

}  // namespace paradiff::models::tokenizers
