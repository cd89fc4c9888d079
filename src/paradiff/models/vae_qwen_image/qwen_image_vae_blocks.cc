#include "paradiff/models/vae_qwen_image/qwen_image_vae_blocks.h"

#include <algorithm>
#include <cmath>

#include "paradiff/kernels/attention.h"
#include "paradiff/kernels/l2_norm.h"

namespace paradiff::models::vae_qwen_image {

using kernels::Padding2d;
using L = ModuleLoader;

kernels::Conv2d load_causal_conv(ModuleLoader& loader, const std::string& prefix, int64_t in,
                                 int64_t out, int64_t kernel) {
  PARADIFF_ASSERT(kernel == 1 || kernel == 3);
  const Tensor w5 =
      loader.tensor(L::join(prefix, "weight"), Shape{out, in, kernel, kernel, kernel}, DType::F32);
  const Tensor b = loader.parameter(L::join(prefix, "bias"), Shape{out});
  // The last temporal tap: the only one that sees the frame (the others see causal zeros).
  const int64_t taps = kernel * kernel;
  Tensor w = Tensor::empty({out, in, kernel, kernel}, DType::F32);
  const float* src = w5.data<float>();
  float* dst = w.data<float>();
  for (int64_t oi = 0; oi < out * in; ++oi)
    std::copy_n(src + (oi * kernel + (kernel - 1)) * taps, taps, dst + oi * taps);
  try {
    return kernels::Conv2d(w, b, 1, Padding2d::same(kernel / 2));
  } catch (...) {
    rethrow_with_context(prefix);
  }
}

void bind_unused_time_conv(ModuleLoader& loader, const std::string& prefix, int64_t in,
                           int64_t out) {
  // Read only to check the shapes and mark the tensors as expected; see the header for why a
  // single frame never runs this conv.
  loader.tensor(L::join(prefix, "weight"), Shape{out, in, 3, 1, 1}, DType::F32);
  loader.parameter(L::join(prefix, "bias"), Shape{out});
}

// ---------------------------------------------------------------------------------------------

RmsNorm::RmsNorm(ModuleLoader& loader, const std::string& prefix, int64_t channels, bool images)
    : scale(static_cast<float>(std::sqrt(static_cast<double>(channels)))) {
  const Shape shape = images ? Shape{channels, 1, 1} : Shape{channels, 1, 1, 1};
  gamma = loader.parameter(L::join(prefix, "gamma"), shape).reshape({channels});
}

void RmsNorm::forward(const Tensor& x, Tensor& out, bool silu) const {
  kernels::l2_norm(x, gamma, scale, out, silu);
}

// ---------------------------------------------------------------------------------------------

ResidualBlock::ResidualBlock(ModuleLoader& loader, const std::string& prefix, int64_t in,
                             int64_t out) {
  norm1_ = RmsNorm(loader, L::join(prefix, "norm1"), in, /*images=*/false);
  conv1_ = load_causal_conv(loader, L::join(prefix, "conv1"), in, out, 3);
  norm2_ = RmsNorm(loader, L::join(prefix, "norm2"), out, /*images=*/false);
  conv2_ = load_causal_conv(loader, L::join(prefix, "conv2"), out, out, 3);
  if (in != out)
    conv_shortcut_ = load_causal_conv(loader, L::join(prefix, "conv_shortcut"), in, out, 1);
}

Tensor ResidualBlock::forward(Tensor x) const {
  Tensor t = Tensor::empty(x.shape(), DType::F32);
  norm1_.forward(x, t, /*silu=*/true);
  Tensor h = conv1_.forward(t);
  norm2_.forward(h, h, /*silu=*/true);
  // The residual (x, or its 1x1 projection) receives conv2's output through the sum post-op.
  Tensor out = conv_shortcut_ ? conv_shortcut_->forward(x) : std::move(x);
  conv2_.forward(h, out, /*accumulate=*/true);
  return out;
}

// ---------------------------------------------------------------------------------------------

AttentionBlock::AttentionBlock(ModuleLoader& loader, const std::string& prefix, int64_t channels)
    : channels_(channels) {
  const int64_t c = channels;
  norm_ = RmsNorm(loader, L::join(prefix, "norm"), c, /*images=*/true);
  // to_qkv is one 1x1 conv; its three row blocks become three GEMMs so that q, k and v come out
  // as contiguous (S, C) rows for the attention kernel.
  const std::string qkv = L::join(prefix, "to_qkv");
  const Tensor w =
      loader.tensor(L::join(qkv, "weight"), Shape{3 * c, c, 1, 1}, DType::F32).reshape({3 * c, c});
  const Tensor b = loader.parameter(L::join(qkv, "bias"), Shape{3 * c});
  to_q_ = kernels::Linear(w.slice(0, c), b.slice(0, c), DType::F32);
  to_k_ = kernels::Linear(w.slice(c, c), b.slice(c, c), DType::F32);
  to_v_ = kernels::Linear(w.slice(2 * c, c), b.slice(2 * c, c), DType::F32);
  const std::string proj = L::join(prefix, "proj");
  proj_ = kernels::Linear(
      loader.tensor(L::join(proj, "weight"), Shape{c, c, 1, 1}, DType::F32).reshape({c, c}),
      loader.parameter(L::join(proj, "bias"), Shape{c}), DType::F32);
}

Tensor AttentionBlock::forward(Tensor x) const {
  const int64_t b = x.dim(0), s = x.dim(1) * x.dim(2), c = channels_;
  Tensor y = Tensor::empty(x.shape(), DType::F32);
  norm_.forward(x, y, /*silu=*/false);
  const Tensor rows = y.reshape({b, s, c});
  const Tensor q = to_q_.forward(rows).reshape({b, s, 1, c});
  const Tensor k = to_k_.forward(rows).reshape({b, s, 1, c});
  const Tensor v = to_v_.forward(rows).reshape({b, s, 1, c});
  Tensor attn = Tensor::empty({b, s, 1, c}, DType::F32);
  kernels::attention(q, k, v, attn, nullptr, static_cast<float>(1.0 / std::sqrt(double(c))));
  // x += proj(attn): the output projection accumulates into the residual.
  Tensor residual = x.reshape({b * s, c});
  proj_.forward(attn.reshape({b * s, c}), residual, kernels::Activation::None,
                /*accumulate=*/true);
  return x;
}

// ---------------------------------------------------------------------------------------------

Resample::Resample(ModuleLoader& loader, const std::string& prefix, int64_t dim, Mode mode) {
  const std::string conv = L::join(prefix, "resample.1");
  const bool up = mode == Mode::Upsample2d || mode == Mode::Upsample3d;
  const int64_t out = up ? dim / 2 : dim;
  const Tensor w = loader.tensor(L::join(conv, "weight"), Shape{out, dim, 3, 3}, DType::F32);
  const Tensor b = loader.parameter(L::join(conv, "bias"), Shape{out});
  try {
    if (up)
      up_ = kernels::UpsampleConv2d(w, b);
    else
      down_ = kernels::Conv2d(w, b, 2, Padding2d{0, 1, 0, 1});
  } catch (...) {
    rethrow_with_context(conv);
  }
  if (mode == Mode::Upsample3d)
    bind_unused_time_conv(loader, L::join(prefix, "time_conv"), dim, 2 * dim);
  if (mode == Mode::Downsample3d)
    bind_unused_time_conv(loader, L::join(prefix, "time_conv"), dim, dim);
}

Tensor Resample::forward(const Tensor& x) const {
  return up_ ? up_->forward(x) : down_->forward(x);
}

// ---------------------------------------------------------------------------------------------

MidBlock::MidBlock(ModuleLoader& loader, const std::string& prefix, int64_t dim) {
  resnets_.emplace_back(loader, L::join(prefix, "resnets.0"), dim, dim);
  attentions_.emplace_back(loader, L::join(prefix, "attentions.0"), dim);
  resnets_.emplace_back(loader, L::join(prefix, "resnets.1"), dim, dim);
}

Tensor MidBlock::forward(Tensor x) const {
  x = resnets_[0].forward(std::move(x));
  x = attentions_[0].forward(std::move(x));
  return resnets_[1].forward(std::move(x));
}

// ---------------------------------------------------------------------------------------------

UpBlock::UpBlock(ModuleLoader& loader, const std::string& prefix, int64_t in, int64_t out,
                 int64_t num_resnets, std::optional<Resample::Mode> upsample) {
  for (int64_t i = 0; i < num_resnets; ++i)
    resnets_.emplace_back(loader, str_cat(prefix, ".resnets.", i), i == 0 ? in : out, out);
  if (upsample) upsampler_.emplace(loader, prefix + ".upsamplers.0", out, *upsample);
}

Tensor UpBlock::forward(Tensor x) const {
  for (const auto& r : resnets_) x = r.forward(std::move(x));
  return upsampler_ ? upsampler_->forward(x) : x;
}

}  // namespace paradiff::models::vae_qwen_image
