// diffusers' AutoencoderKL (autoencoder_kl.py, vae.py): the VAE that turns FLUX latents into
// images (decode) and images into latents (encode). Loads a diffusers `vae/` folder unchanged.
//
// Interface: NCHW (B, C, H, W) tensors, like diffusers. Inside, activations are channels-last
// (B, H, W, C) float32 (see kernels/conv2d.h for why); the layout changes once at each end.
// Compute is float32 throughout; bf16/f16 checkpoints are converted once at load, inputs of
// any floating dtype are accepted, outputs are F32.
//
// Latent scaling is the caller's side, as in diffusers: decode() takes the VAE's own latent
// space, i.e. what FluxPipeline passes after `latents / scaling_factor + shift_factor`
// (unscale_latents() does exactly that), and encode() returns that space too (apply
// scale_latents() to get what the transformer works on, as FLUX img2img pipelines do).
#pragma once

#include <functional>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "paradiff/core/random.h"
#include "paradiff/models/vae/vae_blocks.h"
#include "paradiff/models/vae/vae_config.h"

namespace paradiff::models::vae {

// The encoder's output distribution (diffusers' DiagonalGaussianDistribution): mean and
// log-variance (clamped to [-30, 20]), each (B, latent_channels, h, w) F32.
struct DiagonalGaussianDistribution {
  Tensor mean, logvar;

  Tensor mode() const { return mean; }
  // exp(0.5 · logvar).
  Tensor std() const;
  // mean + std · randn_tensor(mean.shape, generator): diffusers' latent_dist.sample(generator)
  // with a CPU generator, same seed, same noise.
  Tensor sample(Generator& generator) const;
};

// Which halves to load: a text-to-image pipeline needs only the decoder.
enum class VaeParts { Both, DecoderOnly, EncoderOnly };
// The checkpoint names of the half `parts` leaves out (encoder.* and quant_conv.* for a decoder,
// and the reverse), for IgnoringWeights: ModuleLoader's unused-tensor check then still covers
// everything the loaded half should use.
std::function<bool(const std::string&)> other_vae_part(VaeParts parts);

// A diffusers vae folder's config.json, checked to be an AutoencoderKL's (the whole model's and
// the placed decoder's).
AutoencoderKLConfig load_autoencoder_kl_config(const std::string& folder);
// latents / scaling_factor + shift_factor in float32 (AutoencoderKL::unscale_latents for a config).
Tensor unscale_autoencoder_kl_latents(const AutoencoderKLConfig& config, const Tensor& latents);

class AutoencoderKL {
 public:
  // Binds every parameter of the parts asked for through `loader` (F32 compute); the loader's
  // source must hold exactly those tensors (see from_pretrained for how the other part's are
  // set aside).
  AutoencoderKL(const AutoencoderKLConfig& config, ModuleLoader& loader,
                VaeParts parts = VaeParts::Both);

  // A diffusers folder: config.json and diffusion_pytorch_model.safetensors (single or
  // sharded). With DecoderOnly / EncoderOnly the other part's tensors are skipped (and not
  // reported as unused).
  static AutoencoderKL from_pretrained(const std::string& folder, VaeParts parts = VaeParts::Both,
                                       const std::string& variant = {});
  static AutoencoderKL with_random_weights(const AutoencoderKLConfig& config, uint64_t seed,
                                           VaeParts parts = VaeParts::Both);

  const AutoencoderKLConfig& config() const { return config_; }
  bool has_encoder() const { return encoder_ != nullptr; }
  bool has_decoder() const { return decoder_ != nullptr; }

  // latents / scaling_factor + shift_factor, in float32 (FluxPipeline's step before decode).
  Tensor unscale_latents(const Tensor& latents) const;
  // (z - shift_factor) · scaling_factor: encoder space -> transformer space.
  Tensor scale_latents(const Tensor& z) const;

  // z: (B, latent_channels, h, w), already unscaled; returns images (B, out_channels, h·f, w·f)
  // F32 in about [-1, 1], f = config().downsample_factor(). diffusers' vae.decode(z).sample.
  Tensor decode(const Tensor& z) const;
  // images: (B, in_channels, H, W) in [-1, 1]; diffusers' vae.encode(images).latent_dist.
  DiagonalGaussianDistribution encode_distribution(const Tensor& images) const;
  // The distribution's mean (its mode): deterministic, the usual choice for reconstruction.
  // Use encode_distribution(images).sample(generator) for what FLUX img2img pipelines draw.
  Tensor encode(const Tensor& images) const { return encode_distribution(images).mean; }

 private:
  struct Decoder;
  struct Encoder;
  AutoencoderKLConfig config_;
  std::shared_ptr<const Decoder> decoder_;
  std::shared_ptr<const Encoder> encoder_;
};

// diffusers' VaeImageProcessor.postprocess(images, output_type="pil") pixel values:
// round(clamp(x·0.5 + 0.5, 0, 1)·255) as bytes, channels-last: for each image, H·W·C values.
// images: (B, C, H, W) F32.
std::vector<uint8_t> images_to_uint8(const Tensor& images);

}  // namespace paradiff::models::vae
