#include "paradiff/models/flux/flux_config.h"

#include <numeric>

#include "paradiff/core/error.h"

namespace paradiff::models::flux {

namespace {
constexpr int64_t kMaxSize = int64_t{1} << 20;  // far beyond any real model; catches garbage
}

FluxTransformerConfig FluxTransformerConfig::from_json(const JsonConfig& json) {
  FluxTransformerConfig c;
  c.patch_size = json.get_int("patch_size", c.patch_size, 1, 64);
  c.in_channels = json.get_int("in_channels", c.in_channels, 1, kMaxSize);
  c.out_channels = json.get_int("out_channels", c.in_channels, 1, kMaxSize);
  c.num_layers = json.get_int("num_layers", c.num_layers, 0, 10000);
  c.num_single_layers = json.get_int("num_single_layers", c.num_single_layers, 0, 10000);
  c.attention_head_dim = json.get_int("attention_head_dim", c.attention_head_dim, 2, kMaxSize);
  c.num_attention_heads = json.get_int("num_attention_heads", c.num_attention_heads, 1, 4096);
  c.joint_attention_dim = json.get_int("joint_attention_dim", c.joint_attention_dim, 1, kMaxSize);
  c.pooled_projection_dim =
      json.get_int("pooled_projection_dim", c.pooled_projection_dim, 1, kMaxSize);
  c.guidance_embeds = json.get_bool("guidance_embeds", c.guidance_embeds);
  c.axes_dims_rope = json.get_int_list("axes_dims_rope", c.axes_dims_rope);
  c.validate(json.name());
  return c;
}

FluxTransformerConfig FluxTransformerConfig::load(const std::string& config_path) {
  return from_json(JsonConfig::load(config_path));
}

double FluxTransformerConfig::forward_flops(int64_t batch, int64_t image_tokens,
                                            int64_t text_tokens) const {
  const double c = static_cast<double>(inner_dim());
  const double s = static_cast<double>(image_tokens + text_tokens);
  // Both block kinds: 24·S·C² in projections and MLP, 4·S²·C in attention (Q K^T and P V).
  const double per_block = 24.0 * s * c * c + 4.0 * s * s * c;
  const double embed = 2.0 * (image_tokens * in_channels + text_tokens * joint_attention_dim) * c;
  const double out = 2.0 * image_tokens * c * output_channels();
  return batch * ((num_layers + num_single_layers) * per_block + embed + out);
}

void FluxTransformerConfig::validate(const std::string& where) const {
  PARADIFF_CHECK(attention_head_dim % 2 == 0, where,
                 ": attention_head_dim must be even for "
                 "rotary embeddings, got ",
                 attention_head_dim);
  PARADIFF_CHECK(!axes_dims_rope.empty(), where, ": axes_dims_rope must not be empty");
  for (int64_t d : axes_dims_rope)
    PARADIFF_CHECK(d > 0 && d % 2 == 0, where,
                   ": every axes_dims_rope entry must be a positive "
                   "even number, got ",
                   d);
  const int64_t sum = std::accumulate(axes_dims_rope.begin(), axes_dims_rope.end(), int64_t{0});
  PARADIFF_CHECK(sum == attention_head_dim, where,
                 ": axes_dims_rope must sum to "
                 "attention_head_dim (",
                 attention_head_dim, "), they sum to ", sum);
  PARADIFF_CHECK(inner_dim() <= kMaxSize, where,
                 ": num_attention_heads x attention_head_dim = ", inner_dim(), " is too large");
}

}  // namespace paradiff::models::flux
