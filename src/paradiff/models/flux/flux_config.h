// FluxTransformer2DModel's config.json, with diffusers' keys and defaults, validated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "paradiff/io/json_config.h"

namespace paradiff::models::flux {

struct FluxTransformerConfig {
  int64_t patch_size = 1;
  int64_t in_channels = 64;
  int64_t out_channels = 64;  // null in config.json means in_channels
  int64_t num_layers = 19;
  int64_t num_single_layers = 38;
  int64_t attention_head_dim = 128;
  int64_t num_attention_heads = 24;
  int64_t joint_attention_dim = 4096;
  int64_t pooled_projection_dim = 768;
  bool guidance_embeds = false;
  std::vector<int64_t> axes_dims_rope{16, 56, 56};

  int64_t inner_dim() const { return num_attention_heads * attention_head_dim; }
  int64_t mlp_hidden_dim() const { return inner_dim() * 4; }
  int64_t output_channels() const { return patch_size * patch_size * out_channels; }

  // Multiply-adds x 2 of one forward (GEMMs and attention; norms and pointwise work excluded).
  double forward_flops(int64_t batch, int64_t image_tokens, int64_t text_tokens) const;

  // Reads the keys diffusers reads (others, such as _class_name, are ignored) and validates them:
  // positive sizes, axes_dims_rope even and summing to attention_head_dim.
  static FluxTransformerConfig from_json(const JsonConfig& json);
  static FluxTransformerConfig load(const std::string& config_path);
  // Checks the invariants above; throws naming the key and value.
  void validate(const std::string& where) const;
};

}  // namespace paradiff::models::flux
