// The building blocks of diffusers' AutoencoderKL encoder and decoder, on channels-last
// (N, H, W, C) float32 activations. Each binds its parameters by checkpoint name
// ("decoder.up_blocks.1.resnets.0.conv1") through a ModuleLoader. Forward passes take the
// hidden state by value and may reuse its storage: the residual adds are fused into the last
// convolution (oneDNN sum post-op) writing into the input's buffer.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "paradiff/kernels/conv2d.h"
#include "paradiff/kernels/linear.h"
#include "paradiff/kernels/upsample_conv2d.h"
#include "paradiff/models/module_loader.h"

namespace paradiff::models::vae {

// The VAE's norms: GroupNorm with eps 1e-6 and affine parameters.
struct GroupNormParams {
  Tensor weight, bias;  // F32 [C]
  int64_t groups = 32;
  float eps = 1e-6f;
};

GroupNormParams load_group_norm(ModuleLoader& loader, const std::string& prefix, int64_t channels,
                                int64_t groups);
// "<prefix>.weight" [out, in, k, k] and "<prefix>.bias" [out], as a prepacked Conv2d.
kernels::Conv2d load_conv(ModuleLoader& loader, const std::string& prefix, int64_t in, int64_t out,
                          int64_t kernel, int64_t stride, kernels::Padding2d pad);

// ResnetBlock2D without time embedding: x + conv2(silu(norm2(conv1(silu(norm1(x)))))), the
// residual through a 1x1 conv_shortcut when the channel count changes.
class ResnetBlock2D {
 public:
  ResnetBlock2D(ModuleLoader& loader, const std::string& prefix, int64_t in, int64_t out,
                int64_t groups);
  Tensor forward(Tensor x) const;

 private:
  int64_t in_, out_;
  GroupNormParams norm1_, norm2_;
  kernels::Conv2d conv1_, conv2_;
  std::optional<kernels::Conv2d> conv_shortcut_;
};

// The mid block's single-head self-attention over the H·W positions (diffusers' Attention with
// group_norm, residual_connection, to_q/to_k/to_v/to_out.0 with bias, scale 1/sqrt(C)).
class VaeAttention {
 public:
  VaeAttention(ModuleLoader& loader, const std::string& prefix, int64_t channels, int64_t groups);
  Tensor forward(Tensor x) const;

 private:
  int64_t channels_;
  GroupNormParams group_norm_;
  kernels::Linear to_q_, to_k_, to_v_, to_out_;
};

// UNetMidBlock2D: resnets.0, then (attentions.0, resnets.1).
class MidBlock2D {
 public:
  MidBlock2D(ModuleLoader& loader, const std::string& prefix, int64_t channels, int64_t groups,
             bool add_attention);
  Tensor forward(Tensor x) const;

 private:
  std::vector<ResnetBlock2D> resnets_;
  std::optional<VaeAttention> attention_;
};

// Downsample2D as the encoder uses it: pad right and bottom by one, then conv 3x3 stride 2.
class Downsample2D {
 public:
  Downsample2D(ModuleLoader& loader, const std::string& prefix, int64_t channels);
  Tensor forward(const Tensor& x) const { return conv_.forward(x); }

 private:
  kernels::Conv2d conv_;
};

// Upsample2D: nearest x2, then conv 3x3 padding 1, fused (see kernels/upsample_conv2d.h).
class Upsample2D {
 public:
  Upsample2D(ModuleLoader& loader, const std::string& prefix, int64_t channels);
  Tensor forward(const Tensor& x) const { return conv_.forward(x); }

 private:
  kernels::UpsampleConv2d conv_;
};

// DownEncoderBlock2D / UpDecoderBlock2D: resnets, then the optional resampler.
class DownEncoderBlock2D {
 public:
  DownEncoderBlock2D(ModuleLoader& loader, const std::string& prefix, int64_t in, int64_t out,
                     int64_t num_layers, int64_t groups, bool add_downsample);
  Tensor forward(Tensor x) const;

 private:
  std::vector<ResnetBlock2D> resnets_;
  std::optional<Downsample2D> downsampler_;
};

class UpDecoderBlock2D {
 public:
  UpDecoderBlock2D(ModuleLoader& loader, const std::string& prefix, int64_t in, int64_t out,
                   int64_t num_layers, int64_t groups, bool add_upsample);
  Tensor forward(Tensor x) const;

 private:
  std::vector<ResnetBlock2D> resnets_;
  std::optional<Upsample2D> upsampler_;
};

}  // namespace paradiff::models::vae
