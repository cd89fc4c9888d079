// The text part of a Qwen2_5_VLForConditionalGeneration config.json (transformers'
// Qwen2_5_VLTextConfig), for QwenImagePipeline's text encoder, validated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "paradiff/io/json_config.h"

namespace paradiff::models::qwen2_5_vl {

// Defaults are transformers 5's Qwen2_5_VLTextConfig defaults (a 72B-sized model, eps 1e-5), so
// that a config.json that omits a key means what it means to transformers.
struct Qwen2_5_VLTextConfig {
  int64_t vocab_size = 152064;
  int64_t hidden_size = 8192;
  int64_t intermediate_size = 29568;
  int64_t num_hidden_layers = 80;
  int64_t num_attention_heads = 64;
  int64_t num_key_value_heads = 8;
  double rms_norm_eps = 1e-5;
  double rope_theta = 1000000.0;
  // Multimodal RoPE's split of the head_dim / 2 frequencies between the (time, height, width)
  // position rows. Text-only positions are equal on all three rows, so it has no effect here; it
  // is read and checked as transformers needs it to be valid.
  std::vector<int64_t> mrope_section = {16, 24, 24};

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  // Query heads served by each key/value head (transformers' repeat_kv factor).
  int64_t num_key_value_groups() const { return num_attention_heads / num_key_value_heads; }

  // Reads what transformers 5 reads: the nested "text_config" when the file has one (a current
  // save; flat keys beside it are then ignored, as transformers ignores them), else the flat keys
  // of older files. RoPE comes from "rope_scaling" or "rope_parameters" (type "default", or the
  // legacy "mrope" which means the same) with "rope_theta" inside it or beside it. Refused, naming
  // file, key and value: another model_type, an activation other than silu, sliding-window
  // attention, other RoPE types, a head_dim other than hidden_size / num_attention_heads.
  static Qwen2_5_VLTextConfig from_json(const JsonConfig& json);
  static Qwen2_5_VLTextConfig load(const std::string& config_path);
  void validate(const std::string& where) const;
};

}  // namespace paradiff::models::qwen2_5_vl
