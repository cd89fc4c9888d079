#include "paradiff/models/vae/vae_config.h"

#include <cmath>

#include "paradiff/core/error.h"

namespace paradiff::models::vae {

namespace {
constexpr int64_t kMaxChannels = int64_t{1} << 16;
}

int64_t AutoencoderKLConfig::downsample_factor() const {
  return int64_t{1} << (block_out_channels.size() - 1);
}

AutoencoderKLConfig AutoencoderKLConfig::from_json(const JsonConfig& json) {
  AutoencoderKLConfig c;
  c.in_channels = json.get_int("in_channels", c.in_channels, 1, kMaxChannels);
  c.out_channels = json.get_int("out_channels", c.out_channels, 1, kMaxChannels);
  c.down_block_types = json.get_string_list("down_block_types", c.down_block_types);
  c.up_block_types = json.get_string_list("up_block_types", c.up_block_types);
  c.block_out_channels = json.get_int_list("block_out_channels", c.block_out_channels);
  c.layers_per_block = json.get_int("layers_per_block", c.layers_per_block, 1, 64);
  c.act_fn = json.get_string("act_fn", c.act_fn);
  c.latent_channels = json.get_int("latent_channels", c.latent_channels, 1, kMaxChannels);
  c.norm_num_groups = json.get_int("norm_num_groups", c.norm_num_groups, 1, kMaxChannels);
  c.scaling_factor = json.get_float("scaling_factor", c.scaling_factor);
  c.shift_factor = json.optional_float("shift_factor");
  c.force_upcast = json.get_bool("force_upcast", c.force_upcast);
  c.use_quant_conv = json.get_bool("use_quant_conv", c.use_quant_conv);
  c.use_post_quant_conv = json.get_bool("use_post_quant_conv", c.use_post_quant_conv);
  c.mid_block_add_attention = json.get_bool("mid_block_add_attention", c.mid_block_add_attention);
  PARADIFF_CHECK(!json.has("latents_mean") && !json.has("latents_std"), json.name(),
                 ": latents_mean / latents_std are not supported (per-channel latent "
                 "normalisation is done by pipelines other than FLUX's)");
  c.validate(json.name());
  return c;
}

AutoencoderKLConfig AutoencoderKLConfig::load(const std::string& path) {
  return from_json(JsonConfig::load(path));
}

void AutoencoderKLConfig::validate(const std::string& where) const {
  PARADIFF_CHECK(!block_out_channels.empty() && block_out_channels.size() <= 16, where,
                 ": block_out_channels must list 1 to 16 channel counts, got ",
                 block_out_channels.size());
  for (int64_t ch : block_out_channels) {
    PARADIFF_CHECK(ch >= 1 && ch <= kMaxChannels, where,
                   ": block_out_channels entries must be positive, got ", ch);
    PARADIFF_CHECK(ch % norm_num_groups == 0, where, ": norm_num_groups (", norm_num_groups,
                   ") must divide every block_out_channels entry, not ", ch);
  }
  PARADIFF_CHECK(down_block_types.size() == block_out_channels.size(), where, ": ",
                 down_block_types.size(), " down_block_types for ", block_out_channels.size(),
                 " block_out_channels (one per block)");
  PARADIFF_CHECK(up_block_types.size() == block_out_channels.size(), where, ": ",
                 up_block_types.size(), " up_block_types for ", block_out_channels.size(),
                 " block_out_channels (one per block)");
  for (const auto& t : down_block_types)
    PARADIFF_CHECK(t == "DownEncoderBlock2D", where, ": down block type \"", t,
                   "\" is not supported (only DownEncoderBlock2D)");
  for (const auto& t : up_block_types)
    PARADIFF_CHECK(t == "UpDecoderBlock2D", where, ": up block type \"", t,
                   "\" is not supported (only UpDecoderBlock2D)");
  PARADIFF_CHECK(act_fn == "silu" || act_fn == "swish", where, ": act_fn \"", act_fn,
                 "\" is not supported (only silu)");
  PARADIFF_CHECK(std::isfinite(scaling_factor) && scaling_factor != 0.0, where,
                 ": scaling_factor must be a non-zero number, got ", scaling_factor);
  PARADIFF_CHECK(!shift_factor || std::isfinite(*shift_factor), where,
                 ": shift_factor must be finite");
}

}  // namespace paradiff::models::vae
