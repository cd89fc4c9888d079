// QwenImageTransformer2DModel's config.json, with diffusers' keys and defaults, validated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "paradiff/io/json_config.h"

namespace paradiff::models::qwen_image {

struct QwenImageTransformerConfig {
  int64_t patch_size = 2;
  int64_t in_channels = 64;
  int64_t out_channels = 16;  // null or 0 in config.json means in_channels, as diffusers reads it
  int64_t num_layers = 60;
  int64_t attention_head_dim = 128;
  int64_t num_attention_heads = 24;
  int64_t joint_attention_dim = 3584;
  std::vector<int64_t> axes_dims_rope{16, 56, 56};  // (frame, height, width)

  int64_t inner_dim() const { return num_attention_heads * attention_head_dim; }
  int64_t mlp_hidden_dim() const { return inner_dim() * 4; }
  int64_t output_channels() const { return patch_size * patch_size * out_channels; }

  // Multiply-adds x 2 of one forward, counted as FluxTransformerConfig::forward_flops counts
  // them so that the two models' GFLOP figures compare: GEMMs over tokens and attention; norms,
  // pointwise work and the per-sample modulation and timestep GEMMs excluded. Text tokens are
  // the valid (unmasked) ones: masked tokens are dropped before the forward.
  double forward_flops(int64_t batch, int64_t image_tokens, int64_t text_tokens) const;

  // Reads the keys diffusers reads and validates them. `pooled_projection_dim` (present in the
  // released config, ignored by diffusers) is ignored. The Edit/Layered variants' switches
  // (zero_cond_t, use_additional_t_cond, use_layer3d_rope) and guidance_embeds (whose diffusers
  // code path raises) are refused when true.
  static QwenImageTransformerConfig from_json(const JsonConfig& json);
  static QwenImageTransformerConfig load(const std::string& config_path);
  // Positive sizes; three even axes_dims_rope summing to attention_head_dim. Throws naming
  // `where`, the key and the value.
  void validate(const std::string& where) const;
};

}  // namespace paradiff::models::qwen_image
