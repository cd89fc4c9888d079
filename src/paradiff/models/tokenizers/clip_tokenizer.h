// CLIPTokenizer as transformers (5.x) defines it: byte-level BPE with "</w>" word ends, the text
// normalized by NFC, whitespace runs -> one space, lowercase (transformers 5 has only this
// tokenizers-backed CLIPTokenizer; the old Python one, with its optional ftfy cleanup, is gone),
// split into words by CLIP's pattern
//   <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// (whitespace between matches dropped), then BOS + tokens + EOS. The vocabulary and merges come
// from tokenizer.json (what transformers 5 saves, and prefers when a folder has both; see
// tokenizer_json.h) or from vocab.json + merges.txt.
//
// FluxPipeline calls it with padding="max_length", max_length=tokenizer.model_max_length (77),
// truncation=True: encode() does exactly that. FLUX's tokenizer pads with "<|endoftext|>"
// (pad = eos = 49407); the pad token comes from the folder's config.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "paradiff/models/tokenizers/added_tokens.h"
#include "paradiff/models/tokenizers/byte_level_bpe.h"
#include "paradiff/models/tokenizers/encoding.h"

namespace paradiff::models::tokenizers {

class CLIPTokenizer {
 public:
  // A transformers tokenizer folder (FluxPipeline's `tokenizer/`): tokenizer.json, or vocab.json
  // and merges.txt; optionally tokenizer_config.json / special_tokens_map.json (special tokens,
  // model_max_length, added tokens). A tokenizer.json without "model" only adds its added tokens
  // to vocab.json + merges.txt.
  static CLIPTokenizer from_pretrained(const std::string& folder);

  // The ids of the text's tokens: no BOS/EOS, no truncation, no padding.
  std::vector<int64_t> tokenize(std::string_view text) const;
  // BOS + tokens + EOS, truncated to max_length (the text's last tokens go) and padded to it.
  // max_length <= 0 means model_max_length().
  Encoding encode(std::string_view text, int64_t max_length = 0) const;
  // encode() for each prompt, as an I64 (B, max_length) tensor. Logs FluxPipeline's warning for
  // each prompt that truncation shortened.
  Tensor encode_batch(const std::vector<std::string>& prompts, int64_t max_length = 0) const;
  // Token ids back to text, as transformers decodes (byte-level, "</w>" -> " ", stripped).
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;

  int64_t model_max_length() const { return model_max_length_; }
  int64_t bos_token_id() const { return bos_id_; }
  int64_t eos_token_id() const { return eos_id_; }
  int64_t pad_token_id() const { return pad_id_; }
  int64_t unk_token_id() const { return bpe_->unk_id(); }
  // One more than the largest id the tokenizer can produce.
  int64_t vocab_size() const;
  const AddedVocabulary& added_tokens() const { return added_; }

 private:
  CLIPTokenizer() = default;
  // The text after NFC, whitespace collapsing and lowercasing.
  static std::u32string normalize(std::u32string_view text);
  void tokenize_normalized(std::u32string_view text, std::vector<int64_t>& out) const;

  std::shared_ptr<const BytePairEncoding> bpe_;  // shared: copies are cheap
  AddedVocabulary added_;
  int64_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
  int64_t model_max_length_ = 77;
  bool pad_left_ = false;
};

}  // namespace paradiff::models::tokenizers
