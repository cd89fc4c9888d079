#include "paradiff/models/qwen2_5_vl/qwen_image_prompt_embeds.h"

#include <algorithm>
#include <vector>

namespace paradiff::models::qwen2_5_vl {

QwenImagePromptEmbeds encode_qwen_image_prompt(const Qwen2_5_VLTextModel& text_encoder,
                                               const Tensor& input_ids,
                                               const Tensor& attention_mask, int64_t drop,
                                               int64_t max_sequence_length) {
  PARADIFF_CHECK(max_sequence_length >= 1 && max_sequence_length <= 1024,
                 "max_sequence_length must be in [1, 1024] (QwenImagePipeline refuses more than "
                 "1024), got ",
                 max_sequence_length);
  PARADIFF_CHECK(drop >= 0, "the number of template tokens to drop must be >= 0, got ", drop);
  PARADIFF_CHECK(attention_mask.defined(),
                 "QwenImagePipeline's prompt encoding needs the tokenizer's attention_mask");
  const Tensor hidden = text_encoder.forward(input_ids, attention_mask);
  const int64_t batch = input_ids.dim(0), len = input_ids.dim(1), c = hidden.dim(2);
  const int64_t* mask = attention_mask.data<int64_t>();

  // Each prompt's kept rows: its valid tokens after the first `drop`.
  std::vector<std::vector<int64_t>> kept(static_cast<size_t>(batch));
  int64_t longest = 0;
  for (int64_t b = 0; b < batch; ++b) {
    int64_t seen = 0;
    for (int64_t j = 0; j < len; ++j)
      if (mask[b * len + j] != 0 && seen++ >= drop) kept[static_cast<size_t>(b)].push_back(j);
    longest = std::max(longest, static_cast<int64_t>(kept[static_cast<size_t>(b)].size()));
  }
  PARADIFF_CHECK(longest > 0, "no prompt has more than the ", drop,
                 " leading template tokens that QwenImagePipeline drops, so the prompt embeddings "
                 "would be empty");
  const int64_t s = std::min(longest, max_sequence_length);

  QwenImagePromptEmbeds out{Tensor::zeros({batch, s, c}, DType::F32),
                            Tensor::zeros({batch, s}, DType::I64)};
  for (int64_t b = 0; b < batch; ++b) {
    const auto& rows = kept[static_cast<size_t>(b)];
    const int64_t n = std::min(static_cast<int64_t>(rows.size()), s);
    for (int64_t j = 0; j < n; ++j) {
      out.prompt_embeds.select(b).slice(j, 1).copy_from(hidden.select(b).slice(rows[j], 1));
      out.prompt_embeds_mask.data<int64_t>()[b * s + j] = 1;
    }
  }
  return out;
}

QwenImagePromptEmbeds encode_qwen_image_prompt(const Qwen2_5_VLTextModel& text_encoder,
                                               const tokenizers::QwenImagePromptTokens& tokens,
                                               int64_t max_sequence_length) {
  return encode_qwen_image_prompt(text_encoder, tokens.input_ids, tokens.attention_mask,
                                  tokens.drop, max_sequence_length);
}

}  // namespace paradiff::models::qwen2_5_vl
