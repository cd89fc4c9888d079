// T5EncoderModel's config.json with transformers' keys and defaults (T5Config), validated.
#pragma once

#include <cstdint>
#include <string>

#include "paradiff/io/json_config.h"

namespace paradiff::models::t5 {

// The feed-forward activation, from "feed_forward_proj" ("gated-gelu" -> gelu_new, the tanh
// approximation, as transformers maps it; "relu"; "gated-silu"; ...).
enum class T5Activation { Relu, Gelu, GeluTanh, Silu };

struct T5Config {
  int64_t vocab_size = 32128;
  int64_t d_model = 512;
  int64_t d_kv = 64;
  int64_t d_ff = 2048;
  int64_t num_layers = 6;
  int64_t num_heads = 8;
  int64_t relative_attention_num_buckets = 32;
  int64_t relative_attention_max_distance = 128;
  double layer_norm_epsilon = 1e-6;
  T5Activation activation = T5Activation::Relu;  // "relu"
  bool gated = false;                            // "gated-*": wi_0, wi_1 instead of wi

  int64_t inner_dim() const { return num_heads * d_kv; }

  // Reads the keys transformers reads; "dense_act_fn" and "is_gated_act" are derived from
  // "feed_forward_proj" as transformers derives them (values stored in the file are ignored).
  // A decoder config (is_decoder true) is refused.
  static T5Config from_json(const JsonConfig& json);
  static T5Config load(const std::string& config_path);
  void validate(const std::string& where) const;
};

// transformers' T5Attention._relative_position_bucket for the encoder (bidirectional): the bucket
// of key position minus query position. Computed in float32 like PyTorch, so that positions on a
// bucket boundary land where transformers puts them.
int64_t relative_position_bucket(int64_t relative_position, int64_t num_buckets,
                                 int64_t max_distance);

}  // namespace paradiff::models::t5
