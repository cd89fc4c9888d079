// CLIPTextModel's config.json with transformers' keys and defaults (CLIPTextConfig), validated.
#pragma once

#include <cstdint>
#include <string>

#include "paradiff/io/json_config.h"

namespace paradiff::models::clip {

// The feed-forward activation (config "hidden_act").
enum class ClipActivation { QuickGelu, Gelu, GeluTanh, Relu, Silu };

struct CLIPTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;
  int64_t intermediate_size = 2048;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 8;
  int64_t max_position_embeddings = 77;
  ClipActivation hidden_act = ClipActivation::QuickGelu;  // "quick_gelu" (OpenAI CLIP)
  double layer_norm_eps = 1e-5;
  // The pooled output is the hidden state at the first eos_token_id; the legacy value 2 (the
  // configs of OpenAI's checkpoints, FLUX.1's included) means "at the largest id" instead, as
  // transformers keeps it.
  int64_t eos_token_id = 49407;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  bool legacy_pooling() const { return eos_token_id == 2; }

  // Reads the keys transformers reads ("hidden_act": quick_gelu, gelu, gelu_new,
  // gelu_pytorch_tanh, relu, silu/swish); others are ignored. A full CLIPModel config is refused:
  // point at a text encoder folder.
  static CLIPTextConfig from_json(const JsonConfig& json);
  static CLIPTextConfig load(const std::string& config_path);
  void validate(const std::string& where) const;
};

}  // namespace paradiff::models::clip
