#include "paradiff/models/qwen_image/qwen_image_config.h"

#include <nlohmann/json.hpp>
#include <numeric>

#include "paradiff/core/error.h"

namespace paradiff::models::qwen_image {

namespace {
constexpr int64_t kMaxSize = int64_t{1} << 20;  // far beyond any real model; catches garbage

void refuse_variant(const JsonConfig& json, const char* key, const char* why) {
  PARADIFF_CHECK(!json.get_bool(key, false), json.name(), ": config key '", key,
                 "' is true, which is not supported: ", why);
}
}  // namespace

double QwenImageTransformerConfig::forward_flops(int64_t batch, int64_t image_tokens,
                                                 int64_t text_tokens) const {
  const double c = static_cast<double>(inner_dim());
  const double s = static_cast<double>(image_tokens + text_tokens);
  // Per dual-stream block, every token (each through its own stream's weights): q, k, v and the
  // output projection (4·C² multiply-adds) and the MLP (C -> 4C -> C, 8·C²): 24·S·C² FLOPs;
  // joint attention Q K^T and P V over all S tokens: 4·S²·C.
  const double per_block = 24.0 * s * c * c + 4.0 * s * s * c;
  const double embed =
      2.0 *
      (static_cast<double>(image_tokens) * static_cast<double>(in_channels) +
       static_cast<double>(text_tokens) * static_cast<double>(joint_attention_dim)) *
      c;
  const double out =
      2.0 * static_cast<double>(image_tokens) * c * static_cast<double>(output_channels());
  return static_cast<double>(batch) * (static_cast<double>(num_layers) * per_block + embed + out);
}

QwenImageTransformerConfig QwenImageTransformerConfig::from_json(const JsonConfig& json) {
  QwenImageTransformerConfig c;
  c.patch_size = json.get_int("patch_size", c.patch_size, 1, 64);
  c.in_channels = json.get_int("in_channels", c.in_channels, 1, kMaxSize);
  // diffusers: `out_channels or in_channels`: an explicit null or 0 means in_channels, while an
  // absent key takes the default 16.
  const bool explicit_null =
      json.root().contains("out_channels") && json.root()["out_channels"].is_null();
  c.out_channels = json.get_int("out_channels", c.out_channels, 0, kMaxSize);
  if (c.out_channels == 0 || explicit_null) c.out_channels = c.in_channels;
  c.num_layers = json.get_int("num_layers", c.num_layers, 0, 10000);
  c.attention_head_dim = json.get_int("attention_head_dim", c.attention_head_dim, 2, kMaxSize);
  c.num_attention_heads = json.get_int("num_attention_heads", c.num_attention_heads, 1, 4096);
  c.joint_attention_dim = json.get_int("joint_attention_dim", c.joint_attention_dim, 1, kMaxSize);
  c.axes_dims_rope = json.get_int_list("axes_dims_rope", c.axes_dims_rope);
  refuse_variant(json, "guidance_embeds",
                 "diffusers' guidance-embedding path of this model raises a TypeError and no "
                 "released checkpoint uses it");
  refuse_variant(json, "zero_cond_t", "it belongs to the Qwen-Image-Edit-2511 variant");
  refuse_variant(json, "use_additional_t_cond", "it belongs to the Qwen-Image-Layered variant");
  refuse_variant(json, "use_layer3d_rope", "it belongs to the Qwen-Image-Layered variant");
  c.validate(json.name());
  return c;
}

QwenImageTransformerConfig QwenImageTransformerConfig::load(const std::string& config_path) {
  return from_json(JsonConfig::load(config_path));
}

void QwenImageTransformerConfig::validate(const std::string& where) const {
  PARADIFF_CHECK(patch_size >= 1 && in_channels >= 1 && out_channels >= 1 && num_layers >= 0 &&
                     num_attention_heads >= 1 && joint_attention_dim >= 1,
                 where, ": sizes must be positive (patch_size ", patch_size, ", in_channels ",
                 in_channels, ", out_channels ", out_channels, ", num_layers ", num_layers,
                 ", num_attention_heads ", num_attention_heads, ", joint_attention_dim ",
                 joint_attention_dim, ")");
  PARADIFF_CHECK(attention_head_dim >= 2 && attention_head_dim % 2 == 0, where,
                 ": attention_head_dim must be even for rotary embeddings, got ",
                 attention_head_dim);
  PARADIFF_CHECK(axes_dims_rope.size() == 3, where,
                 ": axes_dims_rope must have 3 entries (frame, height, width), got ",
                 axes_dims_rope.size());
  for (int64_t d : axes_dims_rope)
    PARADIFF_CHECK(d > 0 && d % 2 == 0, where,
                   ": every axes_dims_rope entry must be a positive even number, got ", d);
  const int64_t sum = std::accumulate(axes_dims_rope.begin(), axes_dims_rope.end(), int64_t{0});
  PARADIFF_CHECK(sum == attention_head_dim, where, ": axes_dims_rope must sum to ",
                 "attention_head_dim (", attention_head_dim, "), they sum to ", sum);
  PARADIFF_CHECK(inner_dim() <= kMaxSize, where,
                 ": num_attention_heads x attention_head_dim = ", inner_dim(), " is too large");
}

}  // namespace paradiff::models::qwen_image
