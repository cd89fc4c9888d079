#include "paradiff/models/vae/vae_blocks.h"

#include <cmath>

#include "paradiff/kernels/attention.h"
#include "paradiff/kernels/group_norm.h"

namespace paradiff::models::vae {

using kernels::Padding2d;

GroupNormParams load_group_norm(ModuleLoader& loader, const std::string& prefix, int64_t channels,
                                int64_t groups) {
  GroupNormParams p;
  p.weight = loader.parameter(ModuleLoader::join(prefix, "weight"), Shape{channels});
  p.bias = loader.parameter(ModuleLoader::join(prefix, "bias"), Shape{channels});
  p.groups = groups;
  return p;
}

kernels::Conv2d load_conv(ModuleLoader& loader, const std::string& prefix, int64_t in, int64_t out,
                          int64_t kernel, int64_t stride, Padding2d pad) {
  const Tensor w = loader.tensor(ModuleLoader::join(prefix, "weight"),
                                 Shape{out, in, kernel, kernel}, DType::F32);
  const Tensor b = loader.parameter(ModuleLoader::join(prefix, "bias"), Shape{out});
  try {
    return kernels::Conv2d(w, b, stride, pad);
  } catch (...) {
    rethrow_with_context(prefix);
  }
}

namespace {

Tensor normed(const Tensor& x, const GroupNormParams& p, bool silu) {
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  kernels::group_norm(x, p.groups, p.weight, p.bias, p.eps, out, silu);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

ResnetBlock2D::ResnetBlock2D(ModuleLoader& loader, const std::string& prefix, int64_t in,
                             int64_t out, int64_t groups)
    : in_(in), out_(out) {
  using L = ModuleLoader;
  norm1_ = load_group_norm(loader, L::join(prefix, "norm1"), in, groups);
  conv1_ = load_conv(loader, L::join(prefix, "conv1"), in, out, 3, 1, Padding2d::same(1));
  norm2_ = load_group_norm(loader, L::join(prefix, "norm2"), out, groups);
  conv2_ = load_conv(loader, L::join(prefix, "conv2"), out, out, 3, 1, Padding2d::same(1));
  if (in != out)
    conv_shortcut_ =
        load_conv(loader, L::join(prefix, "conv_shortcut"), in, out, 1, 1, Padding2d{});
}

Tensor ResnetBlock2D::forward(Tensor x) const {
  Tensor h = conv1_.forward(normed(x, norm1_, /*silu=*/true));
  kernels::group_norm(h, norm2_.groups, norm2_.weight, norm2_.bias, norm2_.eps, h, true);
  // The residual (x, or its 1x1 projection) receives conv2's output through the sum post-op.
  Tensor out = conv_shortcut_ ? conv_shortcut_->forward(x) : std::move(x);
  conv2_.forward(h, out, /*accumulate=*/true);
  return out;
}

// ---------------------------------------------------------------------------------------------

VaeAttention::VaeAttention(ModuleLoader& loader, const std::string& prefix, int64_t channels,
                           int64_t groups)
    : channels_(channels) {
  using L = ModuleLoader;
  group_norm_ = load_group_norm(loader, L::join(prefix, "group_norm"), channels, groups);
  to_q_ = loader.linear(L::join(prefix, "to_q"), channels, channels);
  to_k_ = loader.linear(L::join(prefix, "to_k"), channels, channels);
  to_v_ = loader.linear(L::join(prefix, "to_v"), channels, channels);
  to_out_ = loader.linear(L::join(prefix, "to_out.0"), channels, channels);
}

Tensor VaeAttention::forward(Tensor x) const {
  const int64_t b = x.dim(0), s = x.dim(1) * x.dim(2), c = channels_;
  const Tensor h = normed(x, group_norm_, /*silu=*/false).reshape({b, s, c});
  const Tensor q = to_q_.forward(h).reshape({b, s, 1, c});
  const Tensor k = to_k_.forward(h).reshape({b, s, 1, c});
  const Tensor v = to_v_.forward(h).reshape({b, s, 1, c});
  Tensor attn = Tensor::empty({b, s, 1, c}, DType::F32);
  kernels::attention(q, k, v, attn, nullptr, static_cast<float>(1.0 / std::sqrt(double(c))));
  // x += to_out(attn): the output projection accumulates into the residual.
  Tensor rows = x.reshape({b * s, c});
  to_out_.forward(attn.reshape({b * s, c}), rows, kernels::Activation::None, /*accumulate=*/true);
  return x;
}

// ---------------------------------------------------------------------------------------------

MidBlock2D::MidBlock2D(ModuleLoader& loader, const std::string& prefix, int64_t channels,
                       int64_t groups, bool add_attention) {
  using L = ModuleLoader;
  resnets_.emplace_back(loader, L::join(prefix, "resnets.0"), channels, channels, groups);
  if (add_attention) attention_.emplace(loader, L::join(prefix, "attentions.0"), channels, groups);
  resnets_.emplace_back(loader, L::join(prefix, "resnets.1"), channels, channels, groups);
}

Tensor MidBlock2D::forward(Tensor x) const {
  x = resnets_[0].forward(std::move(x));
  if (attention_) x = attention_->forward(std::move(x));
  return resnets_[1].forward(std::move(x));
}

// ---------------------------------------------------------------------------------------------

Downsample2D::Downsample2D(ModuleLoader& loader, const std::string& prefix, int64_t channels)
    : conv_(load_conv(loader, ModuleLoader::join(prefix, "conv"), channels, channels, 3, 2,
                      Padding2d{0, 1, 0, 1})) {}

Upsample2D::Upsample2D(ModuleLoader& loader, const std::string& prefix, int64_t channels) {
  const std::string conv = ModuleLoader::join(prefix, "conv");
  const Tensor w = loader.tensor(ModuleLoader::join(conv, "weight"),
                                 Shape{channels, channels, 3, 3}, DType::F32);
  const Tensor b = loader.parameter(ModuleLoader::join(conv, "bias"), Shape{channels});
  try {
    conv_ = kernels::UpsampleConv2d(w, b);
  } catch (...) {
    rethrow_with_context(conv);
  }
}

// ---------------------------------------------------------------------------------------------

DownEncoderBlock2D::DownEncoderBlock2D(ModuleLoader& loader, const std::string& prefix, int64_t in,
                                       int64_t out, int64_t num_layers, int64_t groups,
                                       bool add_downsample) {
  for (int64_t i = 0; i < num_layers; ++i)
    resnets_.emplace_back(loader, str_cat(prefix, ".resnets.", i), i == 0 ? in : out, out, groups);
  if (add_downsample) downsampler_.emplace(loader, prefix + ".downsamplers.0", out);
}

Tensor DownEncoderBlock2D::forward(Tensor x) const {
  for (const auto& r : resnets_) x = r.forward(std::move(x));
  return downsampler_ ? downsampler_->forward(x) : x;
}

UpDecoderBlock2D::UpDecoderBlock2D(ModuleLoader& loader, const std::string& prefix, int64_t in,
                                   int64_t out, int64_t num_layers, int64_t groups,
                                   bool add_upsample) {
  for (int64_t i = 0; i < num_layers; ++i)
    resnets_.emplace_back(loader, str_cat(prefix, ".resnets.", i), i == 0 ? in : out, out, groups);
  if (add_upsample) upsampler_.emplace(loader, prefix + ".upsamplers.0", out);
}

Tensor UpDecoderBlock2D::forward(Tensor x) const {
  for (const auto& r : resnets_) x = r.forward(std::move(x));
  return upsampler_ ? upsampler_->forward(x) : x;
}

}  // namespace paradiff::models::vae
