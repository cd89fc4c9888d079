// QwenImagePipeline's prompt encoding after the tokenizer (diffusers' pipeline_qwenimage.py,
// `_get_qwen_prompt_embeds` and the truncation in `encode_prompt`): run the text encoder on the
// templated prompts, keep each prompt's valid tokens, drop the first `drop` of them (the
// template's system turn), pad to the longest with zeros, and cut at max_sequence_length.
#pragma once

#include <cstdint>

#include "paradiff/core/tensor.h"
#include "paradiff/models/qwen2_5_vl/qwen2_5_vl_text_model.h"
#include "paradiff/models/tokenizers/qwen2_tokenizer.h"

namespace paradiff::models::qwen2_5_vl {

struct QwenImagePromptEmbeds {
  Tensor prompt_embeds;       // F32 (B, S, hidden_size); rows past a prompt's length are zero
  Tensor prompt_embeds_mask;  // I64 (B, S): 1 for a prompt's tokens, then 0
};

// input_ids, attention_mask: the tokenizer's I64 (B, L) (tokenize_qwen_image_prompts). For each
// prompt, its valid tokens' final hidden states (in order, whatever the padding side) without
// the first `drop` (fewer than `drop` valid tokens leave none); S is the longest result, cut to
// max_sequence_length (1 to 1024, as QwenImagePipeline checks; its __call__ passes 512 by
// default). The mask is always returned: diffusers' encode_prompt replaces one of all ones by
// None, which QwenImageTransformer2DModel treats the same. Repeating for num_images_per_prompt is
// the pipeline's. Refused: max_sequence_length outside [1, 1024], and no prompt with more than
// `drop` valid tokens (diffusers would hand the transformer an empty text sequence).
QwenImagePromptEmbeds encode_qwen_image_prompt(const Qwen2_5_VLTextModel& text_encoder,
                                               const Tensor& input_ids,
                                               const Tensor& attention_mask, int64_t drop,
                                               int64_t max_sequence_length);

// The same from the tokenizer's output (its ids, mask and drop).
QwenImagePromptEmbeds encode_qwen_image_prompt(const Qwen2_5_VLTextModel& text_encoder,
                                               const tokenizers::QwenImagePromptTokens& tokens,
                                               int64_t max_sequence_length);

}  // namespace paradiff::models::qwen2_5_vl
