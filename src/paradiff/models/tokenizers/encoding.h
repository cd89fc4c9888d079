// A prompt's token ids as FluxPipeline asks its tokenizers for them: padding="max_length",
// truncation=True, special tokens added.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "paradiff/core/tensor.h"

namespace paradiff::models::tokenizers {

struct Encoding {
  std::vector<int64_t> input_ids;  // exactly max_length ids, padding included
  int64_t length = 0;              // ids before padding, special tokens included
  // The text's tokens that truncation removed (empty when nothing was cut).
  std::vector<int64_t> truncated_ids;
};

// Where the special tokens and padding go.
struct EncodingLayout {
  std::vector<int64_t> prefix;  // before the text (CLIP: BOS)
  std::vector<int64_t> suffix;  // after it (CLIP and T5: EOS)
  int64_t pad_id = 0;
  bool pad_left = false;
};

// Truncates `tokens` (the text's tokens alone) so that prefix + tokens + suffix fits max_length
// (transformers' "longest_first" truncation of a single sequence: the text's last tokens go),
// then pads to max_length. max_length must leave room for the special tokens.
Encoding make_encoding(std::vector<int64_t> tokens, const EncodingLayout& layout,
                       int64_t max_length);

// The input_ids of several encodings of one length as an I64 (B, max_length) tensor.
Tensor stack_input_ids(const std::vector<Encoding>& encodings);

}  // namespace paradiff::models::tokenizers
