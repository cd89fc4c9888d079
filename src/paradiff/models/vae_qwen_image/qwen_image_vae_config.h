// AutoencoderKLQwenImage's config.json (diffusers' autoencoder_kl_qwenimage.py), with diffusers'
// keys (its spelling "temperal_downsample" included) and defaults, which are Qwen/Qwen-Image's
// own values, validated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "paradiff/io/json_config.h"

namespace paradiff::models::vae_qwen_image {

struct AutoencoderKLQwenImageConfig {
  int64_t base_dim = 96;
  int64_t z_dim = 16;
  std::vector<int64_t> dim_mult{1, 2, 4, 4};
  int64_t num_res_blocks = 2;
  // Scales (1, 1/2, 1/4, ...) at which the encoder adds attention after its residual blocks.
  // The decoder ignores this key, as diffusers' does.
  std::vector<double> attn_scales;
  // Per encoder stage but the last: whether it also halves time (a "3d" resample). The decoder
  // uses the list reversed. For a single frame it only decides which resamplers carry time_conv
  // weights (loaded and left unused).
  std::vector<bool> temperal_downsample{false, true, true};
  double dropout = 0.0;  // training only
  int64_t input_channels = 3;
  std::vector<double> latents_mean{-0.7571, -0.7089, -0.9113, 0.1075,  -0.1745, 0.9653,
                                   -0.1517, 1.5508,  0.4134,  -0.0715, 0.5517,  -0.3632,
                                   -0.1922, -0.9497, 0.2503,  -0.2921};
  std::vector<double> latents_std{2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                                  3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160};

  // Spatial factor between images and latents: 2^len(temperal_downsample) (8 for Qwen-Image),
  // diffusers' spatial_compression_ratio and the pipeline's vae_scale_factor.
  int64_t spatial_compression_ratio() const;
  // Channel counts of the encoder stages, base_dim · [1] + dim_mult, and of the decoder's,
  // base_dim · [dim_mult.back()] + reversed(dim_mult), as diffusers builds them.
  std::vector<int64_t> encoder_dims() const;
  std::vector<int64_t> decoder_dims() const;

  // Reads the keys above (others are ignored, as diffusers ignores unknown extras) and
  // validates them; errors name the file, the key and the value.
  static AutoencoderKLQwenImageConfig from_json(const JsonConfig& json);
  static AutoencoderKLQwenImageConfig load(const std::string& path);
  void validate(const std::string& where) const;
};

}  // namespace paradiff::models::vae_qwen_image
