// The building blocks of diffusers' AutoencoderKLQwenImage (the Wan 2.1 VAE) for one frame, on
// channels-last (N, H, W, C) float32 activations. Each binds its parameters by checkpoint name
// ("decoder.up_blocks.1.resnets.0.conv1") through a ModuleLoader.
//
// Why 2-D: a causal Conv3d pads time with 2·p zero frames in front and none behind. For the
// first (here: only) frame of a decode or encode, diffusers' feature cache is empty, so the
// padded input is (0, 0, x) and a kernel of temporal size 3 computes
// W[:, :, 0] * 0 + W[:, :, 1] * 0 + W[:, :, 2] * x: exactly a Conv2d with the last temporal tap
// and the same spatial padding. Kernels of temporal size 1 keep their only tap. The resamplers'
// time_conv never runs on a first chunk (upsample3d marks its cache "Rep" and skips it,
// downsample3d stores the frame and skips it), so its weights are bound and left unused.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "paradiff/kernels/conv2d.h"
#include "paradiff/kernels/linear.h"
#include "paradiff/kernels/upsample_conv2d.h"
#include "paradiff/models/module_loader.h"

namespace paradiff::models::vae_qwen_image {

// QwenImageCausalConv3d(in, out, kernel, padding = kernel / 2) as the Conv2d it is for a first
// frame: "<prefix>.weight" [out, in, kernel, kernel, kernel] (its last temporal tap) and
// "<prefix>.bias" [out]. kernel is 1 or 3.
kernels::Conv2d load_causal_conv(ModuleLoader& loader, const std::string& prefix, int64_t in,
                                 int64_t out, int64_t kernel);

// Binds a time_conv ("<prefix>.weight" [out, in, 3, 1, 1], "<prefix>.bias" [out]) without using
// it: a single frame never reaches it (see above), but the checkpoint holds it.
void bind_unused_time_conv(ModuleLoader& loader, const std::string& prefix, int64_t in,
                           int64_t out);

// QwenImageRMS_norm: x / max(||x||_2 over channels, 1e-12) · sqrt(C) · gamma (bias is the
// constant 0). "<prefix>.gamma" is [C, 1, 1, 1] on 5-D activations (images = false) and
// [C, 1, 1] in the attention block (images = true).
struct RmsNorm {
  Tensor gamma;  // F32 [C]
  float scale = 1.0f;

  RmsNorm() = default;
  RmsNorm(ModuleLoader& loader, const std::string& prefix, int64_t channels, bool images);
  // out may be x.
  void forward(const Tensor& x, Tensor& out, bool silu) const;
};

// QwenImageResidualBlock: shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x)))))), the
// shortcut a 1x1 causal conv when the channel count changes (dropout is off at inference).
class ResidualBlock {
 public:
  ResidualBlock(ModuleLoader& loader, const std::string& prefix, int64_t in, int64_t out);
  Tensor forward(Tensor x) const;

 private:
  RmsNorm norm1_, norm2_;
  kernels::Conv2d conv1_, conv2_;
  std::optional<kernels::Conv2d> conv_shortcut_;
};

// QwenImageAttentionBlock: single-head self-attention over the frame's H·W positions, with the
// full channel count as head dim (scale 1/sqrt(C)), q/k/v from one 1x1 conv (to_qkv: channels
// [0, C), [C, 2C), [2C, 3C)), then proj, added to the input.
class AttentionBlock {
 public:
  AttentionBlock(ModuleLoader& loader, const std::string& prefix, int64_t channels);
  Tensor forward(Tensor x) const;

 private:
  int64_t channels_;
  RmsNorm norm_;
  kernels::Linear to_q_, to_k_, to_v_, proj_;
};

// QwenImageResample for one frame. upsample2d / upsample3d: nearest-exact x2 (for a factor 2
// that is plain pixel duplication) then Conv2d(dim, dim / 2, 3, padding 1), fused.
// downsample2d / downsample3d: zero pad right and bottom by one, then Conv2d(dim, dim, 3,
// stride 2). The "3d" modes add a time_conv that one frame never uses.
class Resample {
 public:
  enum class Mode { Upsample2d, Upsample3d, Downsample2d, Downsample3d };
  Resample(ModuleLoader& loader, const std::string& prefix, int64_t dim, Mode mode);
  Tensor forward(const Tensor& x) const;

 private:
  std::optional<kernels::UpsampleConv2d> up_;
  std::optional<kernels::Conv2d> down_;
};

// QwenImageMidBlock with one layer: resnets.0, attentions.0, resnets.1.
class MidBlock {
 public:
  MidBlock(ModuleLoader& loader, const std::string& prefix, int64_t dim);
  Tensor forward(Tensor x) const;

 private:
  std::vector<ResidualBlock> resnets_;
  std::vector<AttentionBlock> attentions_;
};

// QwenImageUpBlock: num_res_blocks + 1 residual blocks, then the optional upsampler.
class UpBlock {
 public:
  UpBlock(ModuleLoader& loader, const std::string& prefix, int64_t in, int64_t out,
          int64_t num_resnets, std::optional<Resample::Mode> upsample);
  Tensor forward(Tensor x) const;

 private:
  std::vector<ResidualBlock> resnets_;
  std::optional<Resample> upsampler_;
};

}  // namespace paradiff::models::vae_qwen_image
