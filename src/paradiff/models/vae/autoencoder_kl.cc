#include "paradiff/models/vae/autoencoder_kl.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "paradiff/kernels/channels_last.h"
#include "paradiff/kernels/group_norm.h"
#include "paradiff/kernels/pointwise.h"

namespace paradiff::models::vae {

using kernels::Padding2d;

std::function<bool(const std::string&)> other_vae_part(VaeParts parts) {
  return [parts](const std::string& name) {
    const bool encoder_side = name.starts_with("encoder.") || name.starts_with("quant_conv.");
    const bool decoder_side = name.starts_with("decoder.") || name.starts_with("post_quant_conv.");
    if (parts == VaeParts::DecoderOnly) return encoder_side;
    if (parts == VaeParts::EncoderOnly) return decoder_side;
    return false;
  };
}

// ---------------------------------------------------------------------------------------------

struct AutoencoderKL::Decoder {
  int64_t groups;
  std::optional<kernels::Conv2d> post_quant_conv;
  kernels::Conv2d conv_in;
  std::optional<MidBlock2D> mid_block;
  std::vector<UpDecoderBlock2D> up_blocks;
  GroupNormParams conv_norm_out;
  kernels::Conv2d conv_out;

  Decoder(const AutoencoderKLConfig& c, ModuleLoader& loader) : groups(c.norm_num_groups) {
    const auto& ch = c.block_out_channels;
    const int64_t top = ch.back();
    if (c.use_post_quant_conv)
      post_quant_conv = load_conv(loader, "post_quant_conv", c.latent_channels, c.latent_channels,
                                  1, 1, Padding2d{});
    conv_in =
        load_conv(loader, "decoder.conv_in", c.latent_channels, top, 3, 1, Padding2d::same(1));
    mid_block.emplace(loader, "decoder.mid_block", top, groups, c.mid_block_add_attention);
    // Up blocks run from the widest channels back to the first, layers_per_block + 1 resnets
    // each, upsampling after every block but the last.
    int64_t prev = top;
    const int64_t blocks = static_cast<int64_t>(ch.size());
    for (int64_t i = 0; i < blocks; ++i) {
      const int64_t out = ch[blocks - 1 - i];
      up_blocks.emplace_back(loader, str_cat("decoder.up_blocks.", i), prev, out,
                             c.layers_per_block + 1, groups, i != blocks - 1);
      prev = out;
    }
    conv_norm_out = load_group_norm(loader, "decoder.conv_norm_out", ch.front(), groups);
    conv_out =
        load_conv(loader, "decoder.conv_out", ch.front(), c.out_channels, 3, 1, Padding2d::same(1));
  }

  Tensor forward(Tensor z) const {  // channels-last
    if (post_quant_conv) z = post_quant_conv->forward(z);
    Tensor h = mid_block->forward(conv_in.forward(z));
    for (const auto& block : up_blocks) h = block.forward(std::move(h));
    kernels::group_norm(h, conv_norm_out.groups, conv_norm_out.weight, conv_norm_out.bias,
                        conv_norm_out.eps, h, /*silu=*/true);
    return conv_out.forward(h);
  }
};

struct AutoencoderKL::Encoder {
  kernels::Conv2d conv_in;
  std::vector<DownEncoderBlock2D> down_blocks;
  std::optional<MidBlock2D> mid_block;
  GroupNormParams conv_norm_out;
  kernels::Conv2d conv_out;
  std::optional<kernels::Conv2d> quant_conv;

  Encoder(const AutoencoderKLConfig& c, ModuleLoader& loader) {
    const auto& ch = c.block_out_channels;
    const int64_t groups = c.norm_num_groups, blocks = static_cast<int64_t>(ch.size());
    conv_in =
        load_conv(loader, "encoder.conv_in", c.in_channels, ch.front(), 3, 1, Padding2d::same(1));
    int64_t prev = ch.front();
    for (int64_t i = 0; i < blocks; ++i) {
      down_blocks.emplace_back(loader, str_cat("encoder.down_blocks.", i), prev, ch[i],
                               c.layers_per_block, groups, i != blocks - 1);
      prev = ch[i];
    }
    mid_block.emplace(loader, "encoder.mid_block", ch.back(), groups, c.mid_block_add_attention);
    conv_norm_out = load_group_norm(loader, "encoder.conv_norm_out", ch.back(), groups);
    // double_z: mean and log-variance.
    conv_out = load_conv(loader, "encoder.conv_out", ch.back(), 2 * c.latent_channels, 3, 1,
                         Padding2d::same(1));
    if (c.use_quant_conv)
      quant_conv = load_conv(loader, "quant_conv", 2 * c.latent_channels, 2 * c.latent_channels, 1,
                             1, Padding2d{});
  }

  Tensor forward(const Tensor& x) const {  // channels-last
    Tensor h = conv_in.forward(x);
    for (const auto& block : down_blocks) h = block.forward(std::move(h));
    h = mid_block->forward(std::move(h));
    kernels::group_norm(h, conv_norm_out.groups, conv_norm_out.weight, conv_norm_out.bias,
                        conv_norm_out.eps, h, /*silu=*/true);
    Tensor moments = conv_out.forward(h);
    return quant_conv ? quant_conv->forward(moments) : moments;
  }
};

// ---------------------------------------------------------------------------------------------

AutoencoderKL::AutoencoderKL(const AutoencoderKLConfig& config, ModuleLoader& loader,
                             VaeParts parts)
    : config_(config) {
  config_.validate("vae config");
  PARADIFF_CHECK(loader.compute_dtype() == DType::F32,
                 "AutoencoderKL computes in f32; the loader's compute dtype is ",
                 dtype_name(loader.compute_dtype()));
  if (parts != VaeParts::DecoderOnly) encoder_ = std::make_shared<const Encoder>(config_, loader);
  if (parts != VaeParts::EncoderOnly) decoder_ = std::make_shared<const Decoder>(config_, loader);
  loader.finish();
}

AutoencoderKLConfig load_autoencoder_kl_config(const std::string& folder) {
  const std::string config_path = model_config_path(folder, "vae folder");
  const JsonConfig json = JsonConfig::load(config_path);
  const std::string cls = json.get_string("_class_name", "AutoencoderKL");
  PARADIFF_CHECK(cls == "AutoencoderKL", config_path, ": _class_name is \"", cls,
                 "\", expected \"AutoencoderKL\"");
  return AutoencoderKLConfig::from_json(json);
}

AutoencoderKL AutoencoderKL::from_pretrained(const std::string& folder, VaeParts parts,
                                             const std::string& variant) {
  const auto config = load_autoencoder_kl_config(folder);
  const CheckpointWeights weights(
      Checkpoint::open_folder(folder, "diffusion_pytorch_model", variant));
  const IgnoringWeights part_weights(weights, other_vae_part(parts));
  ModuleLoader loader(part_weights, DType::F32);
  return AutoencoderKL(config, loader, parts);
}

AutoencoderKL AutoencoderKL::with_random_weights(const AutoencoderKLConfig& config, uint64_t seed,
                                                 VaeParts parts) {
  ModuleLoader loader(RandomInit{seed}, DType::F32);
  return AutoencoderKL(config, loader, parts);
}

Tensor AutoencoderKL::unscale_latents(const Tensor& latents) const {
  return unscale_autoencoder_kl_latents(config_, latents);
}

Tensor unscale_autoencoder_kl_latents(const AutoencoderKLConfig& config, const Tensor& latents) {
  PARADIFF_CHECK(is_floating(latents.dtype()),
                 "unscale_latents: latents must be floating point, got ", latents.describe());
  Tensor out = latents.to(DType::F32);
  // torch: float32 tensor / python float, then + python float, each rounded in float32.
  kernels::divide_scalar(out, static_cast<float>(config.scaling_factor), out);
  if (config.shift_factor) kernels::add_scalar(out, static_cast<float>(*config.shift_factor), out);
  return out;
}

Tensor AutoencoderKL::scale_latents(const Tensor& z) const {
  PARADIFF_CHECK(is_floating(z.dtype()), "scale_latents: input must be floating point, got ",
                 z.describe());
  Tensor out = z.to(DType::F32);
  if (config_.shift_factor)
    kernels::add_scalar(out, -static_cast<float>(*config_.shift_factor), out);
  kernels::scale(out, static_cast<float>(config_.scaling_factor), out);
  return out;
}

Tensor AutoencoderKL::decode(const Tensor& z) const {
  PARADIFF_CHECK(decoder_ != nullptr,
                 "AutoencoderKL.decode: this VAE was loaded without its decoder");
  PARADIFF_CHECK(z.defined() && is_floating(z.dtype()),
                 "AutoencoderKL.decode: latents must be a floating-point tensor, got ",
                 z.defined() ? z.describe() : std::string("nothing"));
  const int64_t lc = config_.latent_channels;
  if (z.ndim() == 3 && z.dim(2) == 4 * lc) {
    throw Error(str_cat("AutoencoderKL.decode: latents ", z.describe(),
                        " look like packed FLUX latents (B, tokens, ", 4 * lc,
                        "); unpack them to (B, ", lc, ", h, w) first"));
  }
  PARADIFF_CHECK(z.ndim() == 4 && z.dim(1) == lc && z.dim(0) >= 1 && z.dim(2) >= 1 && z.dim(3) >= 1,
                 "AutoencoderKL.decode: latents must be (B, ", lc, ", h, w), got ", z.describe());
  return kernels::nhwc_to_nchw(decoder_->forward(kernels::nchw_to_nhwc(z)));
}

DiagonalGaussianDistribution AutoencoderKL::encode_distribution(const Tensor& images) const {
  PARADIFF_CHECK(encoder_ != nullptr,
                 "AutoencoderKL.encode: this VAE was loaded without its encoder");
  PARADIFF_CHECK(images.defined() && is_floating(images.dtype()),
                 "AutoencoderKL.encode: images must be a floating-point tensor, got ",
                 images.defined() ? images.describe() : std::string("nothing"));
  PARADIFF_CHECK(images.ndim() == 4 && images.dim(1) == config_.in_channels && images.dim(0) >= 1 &&
                     images.dim(2) >= 1 && images.dim(3) >= 1,
                 "AutoencoderKL.encode: images must be (B, ", config_.in_channels, ", H, W), got ",
                 images.describe());
  const Tensor moments = kernels::nhwc_to_nchw(encoder_->forward(kernels::nchw_to_nhwc(images)));
  // torch.chunk(moments, 2, dim=1): mean = first latent_channels channels, logvar the rest.
  const int64_t b = moments.dim(0), lc = config_.latent_channels;
  DiagonalGaussianDistribution d;
  d.mean = Tensor::empty({b, lc, moments.dim(2), moments.dim(3)}, DType::F32);
  d.logvar = Tensor::empty(d.mean.shape(), DType::F32);
  for (int64_t i = 0; i < b; ++i) {
    const Tensor m = moments.select(i);  // (2 latent_channels, h, w)
    d.mean.select(i).copy_from(m.slice(0, lc));
    Tensor logvar = d.logvar.select(i);
    kernels::clamp(m.slice(lc, lc), -30.0f, 20.0f, logvar);
  }
  return d;
}

Tensor DiagonalGaussianDistribution::std() const {
  Tensor out = Tensor::empty(logvar.shape(), DType::F32);
  kernels::scale(logvar, 0.5f, out);
  kernels::exp(out, out);
  return out;
}

Tensor DiagonalGaussianDistribution::sample(Generator& generator) const {
  const Tensor noise = generator.randn(mean.shape(), DType::F32);
  Tensor out = std();
  // Two passes, each rounded, as torch's mean + std * noise (not one fused multiply-add).
  kernels::multiply(out, noise, out);
  kernels::add(mean, out, out);
  return out;
}

std::vector<uint8_t> images_to_uint8(const Tensor& images) {
  PARADIFF_CHECK(images.ndim() == 4, "images_to_uint8: images must be (B, C, H, W), got ",
                 images.describe());
  Tensor nhwc = kernels::nchw_to_nhwc(images);
  kernels::scale_shift_clamp(nhwc, 0.5f, 0.5f, 0.0f, 1.0f, nhwc);  // (x / 2 + 0.5).clamp(0, 1)
  std::vector<uint8_t> out(static_cast<size_t>(nhwc.numel()));
  const float* p = nhwc.data<float>();
  // The bytes of the PNG: quantising is output formatting, done where the bytes are wanted.
  for (size_t i = 0; i < out.size(); ++i) {
    const float scaled = p[i] * 255.0f;
    out[i] = static_cast<uint8_t>(std::nearbyint(scaled));  // NumPy rounds half to even
  }
  return out;
}

}  // namespace paradiff::models::vae
