// Qwen2Tokenizer as transformers (5.x) defines it, the tokenizer of Qwen-Image's text encoder
// (Qwen2.5-VL): byte-level BPE without word-end suffix or unknown token, the text normalized by
// NFC, split by Qwen2's pattern
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//   \s*[\r\n]+|\s+(?!\S)|\s+
// (every character belongs to one piece; digits one by one), no BOS or EOS. Added tokens
// ("<|im_start|>", "<|im_end|>", "<|endoftext|>", ...) are found in the text first, as in every
// transformers tokenizer. The vocabulary and merges come from tokenizer.json (see
// tokenizer_json.h) or vocab.json + merges.txt.
//
// Also QwenImagePipeline's prompt encoding (diffusers' pipeline_qwenimage.py,
// `_get_qwen_prompt_embeds`): each prompt inside the pipeline's chat template, tokenized with
// max_length = tokenizer_max_length + drop, truncation, padding to the longest prompt; the
// pipeline then drops the first `drop` (34) tokens of each prompt's hidden states.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "paradiff/core/tensor.h"
#include "paradiff/models/tokenizers/added_tokens.h"
#include "paradiff/models/tokenizers/byte_level_bpe.h"

namespace paradiff::models::tokenizers {

class Qwen2Tokenizer {
 public:
  // A transformers Qwen2 tokenizer folder (QwenImagePipeline's `tokenizer/`): tokenizer.json, or
  // vocab.json and merges.txt (tokenizer.json when it has both, as transformers); optionally
  // tokenizer_config.json (special and added tokens, add_prefix_space, padding side). As in
  // transformers, eos, unk and pad default to "<|endoftext|>" (null in the config: none), and a
  // special token in neither the vocabulary nor the added tokens becomes a new token.
  static Qwen2Tokenizer from_pretrained(const std::string& folder);

  // The ids of the text's tokens (Qwen2 adds no special tokens around them).
  std::vector<int64_t> tokenize(std::string_view text) const;
  // Ids back to text (byte-level; invalid UTF-8 becomes U+FFFD, as errors="replace").
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;

  int64_t pad_token_id() const { return pad_id_; }  // -1 when the folder names none
  int64_t eos_token_id() const { return eos_id_; }
  bool padding_left() const { return pad_left_; }
  // One more than the largest id the tokenizer can produce.
  int64_t vocab_size() const;
  const AddedVocabulary& added_tokens() const { return added_; }

 private:
  Qwen2Tokenizer() = default;

  std::shared_ptr<const BytePairEncoding> bpe_;  // shared: copies are cheap
  AddedVocabulary added_;
  int64_t pad_id_ = -1, eos_id_ = -1;
  bool pad_left_ = false;
  bool add_prefix_space_ = false;
};

// Qwen2's pre-tokenizer: the pieces of `text` (already normalized) in order; their concatenation
// is `text`.
std::vector<std::u32string_view> split_qwen2_pattern(std::u32string_view text);

// QwenImagePipeline's constants (diffusers' pipeline_qwenimage.py).
struct QwenImagePromptTemplate {
  // "{}" stands for the prompt.
  static constexpr std::string_view text =
      "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, "
      "quantity, text, spatial relationships of the objects and background:<|im_end|>\n"
      "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n";
  static constexpr int64_t drop = 34;                    // prompt_template_encode_start_idx
  static constexpr int64_t tokenizer_max_length = 1024;  // tokenizer_max_length
};

// The template with the prompt in place of "{}" (the prompt is not itself a template: braces in it
// stay as they are, as with Python's str.format).
std::string qwen_image_prompt_text(std::string_view prompt);

struct QwenImagePromptTokens {
  Tensor input_ids;       // I64 (B, L): L is the longest templated prompt, at most 1058
  Tensor attention_mask;  // I64 (B, L): 1 for tokens, 0 for padding
  int64_t drop = QwenImagePromptTemplate::drop;  // leading tokens to drop after the encoder
};

// What QwenImagePipeline's tokenizer call gives for `prompts` (at least one): ids of the templated
// prompts truncated at tokenizer_max_length + drop tokens (the end goes), padded with the pad token
// to the longest. The padding side is the tokenizer's.
QwenImagePromptTokens tokenize_qwen_image_prompts(const Qwen2Tokenizer& tokenizer,
                                                  const std::vector<std::string>& prompts);

}  // namespace paradiff::models::tokenizers
