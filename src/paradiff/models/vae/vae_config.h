// AutoencoderKL's config.json (diffusers' autoencoder_kl.py), with diffusers' keys and
// defaults, validated. FLUX.1's VAE: block_out_channels [128, 256, 512, 512], layers_per_block 2,
// latent_channels 16, scaling_factor 0.3611, shift_factor 0.1159, no quant convs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "paradiff/io/json_config.h"

namespace paradiff::models::vae {

struct AutoencoderKLConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  std::vector<std::string> down_block_types{"DownEncoderBlock2D"};
  std::vector<std::string> up_block_types{"UpDecoderBlock2D"};
  std::vector<int64_t> block_out_channels{64};
  int64_t layers_per_block = 1;
  std::string act_fn = "silu";
  int64_t latent_channels = 4;
  int64_t norm_num_groups = 32;
  double scaling_factor = 0.18215;
  std::optional<double> shift_factor;  // null: no shift
  bool force_upcast = true;            // informational: paradiff's VAE always computes in fp32
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;

  // Spatial factor between images and latents: 2^(number of blocks - 1) (8 for FLUX).
  int64_t downsample_factor() const;

  // Reads the keys above (others, such as sample_size which only diffusers' tiling uses, are
  // ignored) and validates them. Rejects
  // what this implementation does not support (other block types, activations, latents_mean /
  // latents_std) by name rather than computing something else.
  static AutoencoderKLConfig from_json(const JsonConfig& json);
  static AutoencoderKLConfig load(const std::string& path);
  void validate(const std::string& where) const;
};

}  // namespace paradiff::models::vae
