#include "paradiff/models/vae_qwen_image/qwen_image_vae_config.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "paradiff/core/error.h"

namespace paradiff::models::vae_qwen_image {

namespace {

constexpr int64_t kMaxChannels = int64_t{1} << 16;

// JsonConfig has no list-of-bool getter; a null value counts as absent, as for its getters.
std::vector<bool> get_bool_list(const JsonConfig& json, const std::string& key,
                                const std::vector<bool>& default_value) {
  if (!json.has(key)) return default_value;
  const nlohmann::json& v = json.root().at(key);
  PARADIFF_CHECK(v.is_array(), json.name(), ": config key '", key,
                 "' must be a list of booleans, got ", json_excerpt(v));
  std::vector<bool> out;
  for (const auto& e : v) {
    PARADIFF_CHECK(e.is_boolean(), json.name(), ": config key '", key,
                   "' must be a list of booleans, got ", json_excerpt(v));
    out.push_back(e.get<bool>());
  }
  return out;
}

}  // namespace

int64_t AutoencoderKLQwenImageConfig::spatial_compression_ratio() const {
  return int64_t{1} << temperal_downsample.size();
}

std::vector<int64_t> AutoencoderKLQwenImageConfig::encoder_dims() const {
  std::vector<int64_t> dims{base_dim};
  for (int64_t m : dim_mult) dims.push_back(base_dim * m);
  return dims;
}

std::vector<int64_t> AutoencoderKLQwenImageConfig::decoder_dims() const {
  std::vector<int64_t> dims{base_dim * dim_mult.back()};
  for (auto it = dim_mult.rbegin(); it != dim_mult.rend(); ++it) dims.push_back(base_dim * *it);
  return dims;
}

AutoencoderKLQwenImageConfig AutoencoderKLQwenImageConfig::from_json(const JsonConfig& json) {
  AutoencoderKLQwenImageConfig c;
  c.base_dim = json.get_int("base_dim", c.base_dim, 1, kMaxChannels);
  c.z_dim = json.get_int("z_dim", c.z_dim, 1, kMaxChannels);
  c.dim_mult = json.get_int_list("dim_mult", c.dim_mult);
  c.num_res_blocks = json.get_int("num_res_blocks", c.num_res_blocks, 1, 64);
  c.attn_scales = json.get_float_list("attn_scales", c.attn_scales);
  c.temperal_downsample = get_bool_list(json, "temperal_downsample", c.temperal_downsample);
  c.dropout = json.get_float("dropout", c.dropout, 0.0, 1.0);
  c.input_channels = json.get_int("input_channels", c.input_channels, 1, kMaxChannels);
  c.latents_mean = json.get_float_list("latents_mean", c.latents_mean);
  c.latents_std = json.get_float_list("latents_std", c.latents_std);
  c.validate(json.name());
  return c;
}

AutoencoderKLQwenImageConfig AutoencoderKLQwenImageConfig::load(const std::string& path) {
  return from_json(JsonConfig::load(path));
}

void AutoencoderKLQwenImageConfig::validate(const std::string& where) const {
  PARADIFF_CHECK(base_dim >= 1 && base_dim <= kMaxChannels, where,
                 ": base_dim must be in [1, 65536], got ", base_dim);
  PARADIFF_CHECK(z_dim >= 1 && z_dim <= kMaxChannels, where, ": z_dim must be in [1, 65536], got ",
                 z_dim);
  PARADIFF_CHECK(input_channels >= 1 && input_channels <= kMaxChannels, where,
                 ": input_channels must be in [1, 65536], got ", input_channels);
  PARADIFF_CHECK(num_res_blocks >= 1 && num_res_blocks <= 64, where,
                 ": num_res_blocks must be in [1, 64], got ", num_res_blocks);
  PARADIFF_CHECK(!dim_mult.empty() && dim_mult.size() <= 16, where,
                 ": dim_mult must list 1 to 16 multipliers, got ", dim_mult.size());
  for (int64_t m : dim_mult)
    PARADIFF_CHECK(m >= 1 && base_dim * m <= kMaxChannels, where,
                   ": dim_mult entries must be positive with base_dim · entry <= 65536, got ", m);
  // diffusers indexes the list per stage and derives the pipeline's scale factor from its
  // length: any other length is an IndexError there or a wrong image size.
  PARADIFF_CHECK(temperal_downsample.size() + 1 == dim_mult.size(), where,
                 ": temperal_downsample has ", temperal_downsample.size(), " entries; ",
                 dim_mult.size(), " dim_mult entries need ", dim_mult.size() - 1,
                 " (one per stage but the last)");
  // Every decoder stage but the last ends in a resample that halves its channels.
  const auto dec = decoder_dims();
  for (size_t i = 1; i + 1 < dec.size(); ++i)
    PARADIFF_CHECK(dec[i] >= 2, where, ": decoder stage ", i - 1, " has ", dec[i],
                   " channels, too few to halve in its upsampler (base_dim ", base_dim, ")");
  PARADIFF_CHECK(dropout >= 0.0 && dropout <= 1.0, where, ": dropout must be in [0, 1], got ",
                 dropout);
  for (double s : attn_scales)
    PARADIFF_CHECK(std::isfinite(s), where, ": attn_scales entries must be finite numbers");
  PARADIFF_CHECK(static_cast<int64_t>(latents_mean.size()) == z_dim, where, ": latents_mean has ",
                 latents_mean.size(), " entries, z_dim is ", z_dim);
  PARADIFF_CHECK(static_cast<int64_t>(latents_std.size()) == z_dim, where, ": latents_std has ",
                 latents_std.size(), " entries, z_dim is ", z_dim);
  for (double m : latents_mean)
    PARADIFF_CHECK(std::isfinite(m), where, ": latents_mean entries must be finite, got ", m);
  for (double s : latents_std)
    PARADIFF_CHECK(std::isfinite(s) && s != 0.0, where,
                   ": latents_std entries must be finite and non-zero, got ", s);
}

}  // namespace paradiff::models::vae_qwen_image
