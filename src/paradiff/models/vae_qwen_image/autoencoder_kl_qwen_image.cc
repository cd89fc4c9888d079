#include "paradiff/models/vae_qwen_image/autoencoder_kl_qwen_image.h"

#include <algorithm>
#include <filesystem>
#include <variant>
#include <vector>

#include "paradiff/kernels/channels_last.h"
#include "paradiff/kernels/pointwise.h"
#include "paradiff/models/vae_qwen_image/qwen_image_vae_blocks.h"

namespace paradiff::models::vae_qwen_image {

namespace {

// One frame as (B, C, H, W) F32: diffusers' (B, C, 1, H, W), or the same without the frame axis.
Tensor single_frame(const Tensor& t, int64_t channels, const char* what, const char* dims) {
  PARADIFF_CHECK(t.defined() && is_floating(t.dtype()), "AutoencoderKLQwenImage.", what,
                 ": input must be a floating-point tensor, got ",
                 t.defined() ? t.describe() : std::string("nothing"));
  PARADIFF_CHECK(t.ndim() != 5 || t.dim(2) == 1, "AutoencoderKLQwenImage.", what, ": input ",
                 t.describe(), " has ", t.dim(2),
                 " frames; only single images (one frame) are supported");
  const bool ok = (t.ndim() == 4 || t.ndim() == 5) && t.dim(0) >= 1 && t.dim(1) == channels &&
                  t.dim(-2) >= 1 && t.dim(-1) >= 1;
  PARADIFF_CHECK(ok, "AutoencoderKLQwenImage.", what, ": input must be (B, ", channels, ", 1, ",
                 dims, ") or (B, ", channels, ", ", dims, "), got ", t.describe());
  return t.to(DType::F32).reshape({t.dim(0), channels, t.dim(-2), t.dim(-1)});
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct AutoencoderKLQwenImage::Decoder {
  kernels::Conv2d post_quant_conv, conv_in;
  std::optional<MidBlock> mid_block;
  std::vector<UpBlock> up_blocks;
  RmsNorm norm_out;
  kernels::Conv2d conv_out;

  Decoder(const AutoencoderKLQwenImageConfig& c, ModuleLoader& loader) {
    const auto dims = c.decoder_dims();
    const int64_t stages = static_cast<int64_t>(c.dim_mult.size());
    post_quant_conv = load_causal_conv(loader, "post_quant_conv", c.z_dim, c.z_dim, 1);
    conv_in = load_causal_conv(loader, "decoder.conv_in", c.z_dim, dims[0], 3);
    mid_block.emplace(loader, "decoder.mid_block", dims[0]);
    for (int64_t i = 0; i < stages; ++i) {
      // Every stage but the first starts from the previous upsampler's halved channels.
      const int64_t in = i > 0 ? dims[i] / 2 : dims[i];
      std::optional<Resample::Mode> mode;
      if (i != stages - 1) {
        // The decoder's temporal flags are the encoder's reversed.
        mode = c.temperal_downsample[c.temperal_downsample.size() - 1 - i]
                   ? Resample::Mode::Upsample3d
                   : Resample::Mode::Upsample2d;
      }
      up_blocks.emplace_back(loader, str_cat("decoder.up_blocks.", i), in, dims[i + 1],
                             c.num_res_blocks + 1, mode);
    }
    norm_out = RmsNorm(loader, "decoder.norm_out", dims.back(), /*images=*/false);
    conv_out = load_causal_conv(loader, "decoder.conv_out", dims.back(), c.input_channels, 3);
  }

  Tensor forward(const Tensor& z) const {  // channels-last
    Tensor h = mid_block->forward(conv_in.forward(post_quant_conv.forward(z)));
    for (const auto& block : up_blocks) h = block.forward(std::move(h));
    norm_out.forward(h, h, /*silu=*/true);
    Tensor out = conv_out.forward(h);
    kernels::clamp(out, -1.0f, 1.0f, out);
    return out;
  }
};

struct AutoencoderKLQwenImage::Encoder {
  using Layer = std::variant<ResidualBlock, AttentionBlock, Resample>;
  kernels::Conv2d conv_in;
  std::vector<Layer> down_blocks;  // diffusers' flat list, indexed as in the checkpoint
  bool has_down_attention = false;
  std::optional<MidBlock> mid_block;
  RmsNorm norm_out;
  kernels::Conv2d conv_out, quant_conv;

  Encoder(const AutoencoderKLQwenImageConfig& c, ModuleLoader& loader) {
    const auto dims = c.encoder_dims();
    const int64_t stages = static_cast<int64_t>(c.dim_mult.size());
    conv_in = load_causal_conv(loader, "encoder.conv_in", c.input_channels, dims[0], 3);
    double scale = 1.0;
    auto name = [&] { return str_cat("encoder.down_blocks.", down_blocks.size()); };
    for (int64_t i = 0; i < stages; ++i) {
      int64_t in = dims[i];
      const int64_t out = dims[i + 1];
      const bool attention =
          std::find(c.attn_scales.begin(), c.attn_scales.end(), scale) != c.attn_scales.end();
      for (int64_t r = 0; r < c.num_res_blocks; ++r) {
        down_blocks.emplace_back(std::in_place_type<ResidualBlock>, loader, name(), in, out);
        if (attention) {
          down_blocks.emplace_back(std::in_place_type<AttentionBlock>, loader, name(), out);
          has_down_attention = true;
        }
        in = out;
      }
      if (i != stages - 1) {
        const auto mode =
            c.temperal_downsample[i] ? Resample::Mode::Downsample3d : Resample::Mode::Downsample2d;
        down_blocks.emplace_back(std::in_place_type<Resample>, loader, name(), out, mode);
        scale /= 2.0;
      }
    }
    mid_block.emplace(loader, "encoder.mid_block", dims.back());
    norm_out = RmsNorm(loader, "encoder.norm_out", dims.back(), /*images=*/false);
    conv_out = load_causal_conv(loader, "encoder.conv_out", dims.back(), 2 * c.z_dim, 3);
    quant_conv = load_causal_conv(loader, "quant_conv", 2 * c.z_dim, 2 * c.z_dim, 1);
  }

  Tensor forward(const Tensor& x) const {  // channels-last
    Tensor h = conv_in.forward(x);
    for (const auto& layer : down_blocks)
      h = std::visit([&](const auto& l) { return l.forward(std::move(h)); }, layer);
    h = mid_block->forward(std::move(h));
    norm_out.forward(h, h, /*silu=*/true);
    return quant_conv.forward(conv_out.forward(h));
  }
};

// ---------------------------------------------------------------------------------------------

AutoencoderKLQwenImage::AutoencoderKLQwenImage(const AutoencoderKLQwenImageConfig& config,
                                               ModuleLoader& loader, VaeParts parts)
    : config_(config) {
  config_.validate("vae config");
  PARADIFF_CHECK(loader.compute_dtype() == DType::F32,
                 "AutoencoderKLQwenImage computes in f32; the loader's compute dtype is ",
                 dtype_name(loader.compute_dtype()));
  if (parts != VaeParts::DecoderOnly) encoder_ = std::make_shared<const Encoder>(config_, loader);
  if (parts != VaeParts::EncoderOnly) decoder_ = std::make_shared<const Decoder>(config_, loader);
  loader.finish();
}

AutoencoderKLQwenImageConfig load_qwen_image_vae_config(const std::string& folder) {
  const std::string config_path = model_config_path(folder, "vae folder");
  const JsonConfig json = JsonConfig::load(config_path);
  const std::string cls = json.get_string("_class_name", "AutoencoderKLQwenImage");
  PARADIFF_CHECK(cls == "AutoencoderKLQwenImage", config_path, ": _class_name is \"", cls,
                 "\", expected \"AutoencoderKLQwenImage\"");
  return AutoencoderKLQwenImageConfig::from_json(json);
}

AutoencoderKLQwenImage AutoencoderKLQwenImage::from_pretrained(const std::string& folder,
                                                               VaeParts parts,
                                                               const std::string& variant) {
  const auto config = load_qwen_image_vae_config(folder);
  const CheckpointWeights weights(
      Checkpoint::open_folder(folder, "diffusion_pytorch_model", variant));
  const IgnoringWeights part_weights(weights, vae::other_vae_part(parts));
  ModuleLoader loader(part_weights, DType::F32);
  return AutoencoderKLQwenImage(config, loader, parts);
}

AutoencoderKLQwenImage AutoencoderKLQwenImage::with_random_weights(
    const AutoencoderKLQwenImageConfig& config, uint64_t seed, VaeParts parts) {
  ModuleLoader loader(RandomInit{seed}, DType::F32);
  return AutoencoderKLQwenImage(config, loader, parts);
}

// ---------------------------------------------------------------------------------------------

namespace {

// latents (B, z_dim, [1,] h, w) as F32 planes, one per (batch, channel), for per-channel maps.
Tensor latent_planes(const Tensor& latents, int64_t z_dim, const char* what) {
  PARADIFF_CHECK(latents.defined() && is_floating(latents.dtype()), what,
                 ": latents must be a floating-point tensor, got ",
                 latents.defined() ? latents.describe() : std::string("nothing"));
  PARADIFF_CHECK((latents.ndim() == 4 || latents.ndim() == 5) && latents.dim(1) == z_dim, what,
                 ": latents must be (B, ", z_dim, ", 1, h, w) or (B, ", z_dim, ", h, w), got ",
                 latents.describe());
  return latents.to(DType::F32);
}

}  // namespace

Tensor AutoencoderKLQwenImage::unnormalize_latents(const Tensor& latents) const {
  return unnormalize_qwen_image_latents(config_, latents);
}

Tensor unnormalize_qwen_image_latents(const AutoencoderKLQwenImageConfig& config,
                                      const Tensor& latents) {
  const int64_t zc = config.z_dim;
  Tensor out = latent_planes(latents, zc, "unnormalize_latents");
  const int64_t planes = out.dim(0) * zc;
  const Tensor rows = out.reshape({planes, -1});
  for (int64_t p = 0; p < planes; ++p) {
    const int64_t c = p % zc;
    // torch: 1.0 / tensor(latents_std) in float32, then latents / that + latents_mean.
    const float rstd = 1.0f / static_cast<float>(config.latents_std[c]);
    Tensor plane = rows.select(p);
    kernels::divide_scalar(plane, rstd, plane);
    kernels::add_scalar(plane, static_cast<float>(config.latents_mean[c]), plane);
  }
  return out;
}

Tensor AutoencoderKLQwenImage::normalize_latents(const Tensor& z) const {
  const int64_t zc = config_.z_dim;
  Tensor out = latent_planes(z, zc, "normalize_latents");
  const int64_t planes = out.dim(0) * zc;
  const Tensor rows = out.reshape({planes, -1});
  for (int64_t p = 0; p < planes; ++p) {
    const int64_t c = p % zc;
    const float rstd = 1.0f / static_cast<float>(config_.latents_std[c]);
    Tensor plane = rows.select(p);
    kernels::add_scalar(plane, -static_cast<float>(config_.latents_mean[c]), plane);
    kernels::scale(plane, rstd, plane);
  }
  return out;
}

Tensor AutoencoderKLQwenImage::decode(const Tensor& z) const {
  PARADIFF_CHECK(decoder_ != nullptr,
                 "AutoencoderKLQwenImage.decode: this VAE was loaded without its decoder");
  const int64_t zc = config_.z_dim;
  if (z.defined() && z.ndim() == 3 && z.dim(2) == 4 * zc) {
    throw Error(str_cat("AutoencoderKLQwenImage.decode: latents ", z.describe(),
                        " look like packed Qwen-Image latents (B, tokens, ", 4 * zc,
                        "); unpack them to (B, ", zc, ", 1, h, w) first"));
  }
  const Tensor frame = single_frame(z, zc, "decode", "h, w");
  return kernels::nhwc_to_nchw(decoder_->forward(kernels::nchw_to_nhwc(frame)));
}

DiagonalGaussianDistribution AutoencoderKLQwenImage::encode_distribution(
    const Tensor& images) const {
  PARADIFF_CHECK(encoder_ != nullptr,
                 "AutoencoderKLQwenImage.encode: this VAE was loaded without its encoder");
  // diffusers' encoder calls attention blocks in down_blocks with the feature cache they do not
  // take (a TypeError), so there is nothing to match; refuse rather than guess.
  PARADIFF_CHECK(!encoder_->has_down_attention,
                 "AutoencoderKLQwenImage.encode: attn_scales puts attention blocks in the "
                 "encoder's down_blocks, which diffusers' encoder cannot run; not supported");
  const Tensor frame = single_frame(images, config_.input_channels, "encode", "H, W");
  // Each downsampling stage maps a size s to floor(s / 2) and needs s >= 2.
  int64_t h = frame.dim(2), w = frame.dim(3);
  for (size_t i = 0; i < config_.temperal_downsample.size(); ++i) {
    PARADIFF_CHECK(h >= 2 && w >= 2, "AutoencoderKLQwenImage.encode: images ", images.describe(),
                   " are too small for ", config_.temperal_downsample.size(),
                   " downsampling stages");
    h /= 2;
    w /= 2;
  }
  const Tensor moments = kernels::nhwc_to_nchw(encoder_->forward(kernels::nchw_to_nhwc(frame)));
  // DiagonalGaussianDistribution: mean = the first z_dim channels, logvar the rest, clamped.
  const int64_t b = moments.dim(0), zc = config_.z_dim;
  DiagonalGaussianDistribution d;
  d.mean = Tensor::empty({b, zc, moments.dim(2), moments.dim(3)}, DType::F32);
  d.logvar = Tensor::empty(d.mean.shape(), DType::F32);
  for (int64_t i = 0; i < b; ++i) {
    const Tensor m = moments.select(i);  // (2 z_dim, h, w)
    d.mean.select(i).copy_from(m.slice(0, zc));
    Tensor logvar = d.logvar.select(i);
    kernels::clamp(m.slice(zc, zc), -30.0f, 20.0f, logvar);
  }
  return d;
}

}  // namespace paradiff::models::vae_qwen_image
