// diffusers' AutoencoderKLQwenImage (autoencoder_kl_qwenimage.py; the Wan 2.1 video VAE,
// fine-tuned by Qwen) for single images: one latent frame decoded, one image encoded. Loads a
// diffusers `vae/` folder unchanged. Its causal 3-D convolutions run as the 2-D convolutions
// they reduce to for a first frame (see qwen_image_vae_blocks.h); the result equals diffusers'
// within float rounding.
//
// Interface: diffusers' 5-D video layout (B, C, 1, H, W) or the same without the frame axis
// (B, C, H, W); outputs drop the frame axis (QwenImagePipeline takes frame 0 of the decoded
// video, `[:, :, 0]`). Inside, activations are channels-last (B, H, W, C) float32; compute is
// float32 throughout (bf16 checkpoints are converted once at load).
//
// Latent normalisation is the caller's side, as in diffusers: decode() takes the VAE's own
// latent space, i.e. what QwenImagePipeline passes after un-normalising the transformer's
// latents with latents_mean / latents_std (unnormalize_latents() does exactly that), and
// encode() returns that space too (normalize_latents() maps it to the transformer's, as the
// img2img pipeline does).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "paradiff/models/vae/autoencoder_kl.h"
#include "paradiff/models/vae_qwen_image/qwen_image_vae_config.h"

namespace paradiff::models::vae_qwen_image {

using vae::DiagonalGaussianDistribution;
using vae::VaeParts;

// A diffusers vae folder's config.json, checked to be an AutoencoderKLQwenImage's (the whole
// model's and the placed decoder's).
AutoencoderKLQwenImageConfig load_qwen_image_vae_config(const std::string& folder);

// AutoencoderKLQwenImage::unnormalize_latents for a config (the placed decoder's too).
Tensor unnormalize_qwen_image_latents(const AutoencoderKLQwenImageConfig& config,
                                      const Tensor& latents);

class AutoencoderKLQwenImage {
 public:
  // Binds every parameter of the parts asked for through `loader` (F32 compute); the loader's
  // source must hold exactly those tensors.
  AutoencoderKLQwenImage(const AutoencoderKLQwenImageConfig& config, ModuleLoader& loader,
                         VaeParts parts = VaeParts::Both);

  // A diffusers folder: config.json (_class_name AutoencoderKLQwenImage) and
  // diffusion_pytorch_model.safetensors (single or sharded). With DecoderOnly / EncoderOnly the
  // other part's tensors are skipped (and not reported as unused).
  static AutoencoderKLQwenImage from_pretrained(const std::string& folder,
                                                VaeParts parts = VaeParts::Both,
                                                const std::string& variant = {});
  static AutoencoderKLQwenImage with_random_weights(const AutoencoderKLQwenImageConfig& config,
                                                    uint64_t seed, VaeParts parts = VaeParts::Both);

  const AutoencoderKLQwenImageConfig& config() const { return config_; }
  bool has_encoder() const { return encoder_ != nullptr; }
  bool has_decoder() const { return decoder_ != nullptr; }

  // QwenImagePipeline's step before decode, per channel c (dim 1):
  //   latents / (1 / latents_std[c]) + latents_mean[c]
  // in float32 with torch's roundings (the reciprocal rounded, then a division, then a sum).
  // latents: (B, z_dim, 1, h, w) or (B, z_dim, h, w), any floating dtype; returns F32, same shape.
  Tensor unnormalize_latents(const Tensor& latents) const;
  // The inverse, as the img2img pipeline normalises encoded images:
  //   (z - latents_mean[c]) · (1 / latents_std[c]).
  Tensor normalize_latents(const Tensor& z) const;

  // z: (B, z_dim, 1, h, w) or (B, z_dim, h, w), already un-normalised; returns images
  // (B, input_channels, h·f, w·f) F32 clamped to [-1, 1], f = spatial_compression_ratio().
  // diffusers' vae.decode(z).sample[:, :, 0].
  Tensor decode(const Tensor& z) const;
  // images: (B, input_channels, 1, H, W) or (B, input_channels, H, W) in [-1, 1];
  // diffusers' vae.encode(images).latent_dist, mean and log-variance (B, z_dim, h, w) without
  // the frame axis (h = H / f rounded down per stage). sample(generator) draws the same noise
  // as diffusers' latent_dist.sample(generator): the 5-D shape has the same element order.
  DiagonalGaussianDistribution encode_distribution(const Tensor& images) const;
  Tensor encode(const Tensor& images) const { return encode_distribution(images).mean; }

 private:
  struct Decoder;
  struct Encoder;
  AutoencoderKLQwenImageConfig config_;
  std::shared_ptr<const Decoder> decoder_;
  std::shared_ptr<const Encoder> encoder_;
};

}  // namespace paradiff::models::vae_qwen_image
