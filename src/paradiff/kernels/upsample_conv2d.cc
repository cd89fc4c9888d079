#include "paradiff/kernels/upsample_conv2d.h"

#include <vector>

namespace paradiff::kernels {

namespace {
// Output phase p (0: even, 1: odd) of the upsampled axis reads input offsets {p - 1, p}; tap
// k of the 3x3 kernel (offset k - 1 on the upsampled grid) lands on window position
// kTapToWindow[p][k].
constexpr int kTapToWindow[2][3] = {{0, 1, 1}, {0, 0, 1}};
}  // namespace

// The phase weights are sums of the checkpoint's taps, computed on the host once at load.
UpsampleConv2d::UpsampleConv2d(const Tensor& weight, const Tensor& bias) {
  PARADIFF_CHECK(weight.ndim() == 4 && weight.dim(2) == 3 && weight.dim(3) == 3,
                 "upsample conv weight must be [out, in, 3, 3], got ", weight.describe());
  const int64_t out = weight.dim(0), in = weight.dim(1);
  const Tensor w = weight.to(DType::F32);
  const float* src = w.data<float>();
  for (int py = 0; py < 2; ++py) {
    for (int px = 0; px < 2; ++px) {
      std::vector<double> sums(static_cast<size_t>(out * in * 4), 0.0);
      for (int64_t oi = 0; oi < out * in; ++oi)
        for (int ky = 0; ky < 3; ++ky)
          for (int kx = 0; kx < 3; ++kx)
            sums[oi * 4 + kTapToWindow[py][ky] * 2 + kTapToWindow[px][kx]] +=
                src[oi * 9 + ky * 3 + kx];
      Tensor phase = Tensor::empty({out, in, 2, 2}, DType::F32);
      for (size_t i = 0; i < sums.size(); ++i) phase.data<float>()[i] = static_cast<float>(sums[i]);
      // Phase 0 reads rows i-1, i: pad one on top; phase 1 reads i, i+1: pad one below.
      const Padding2d pad{1 - py, py, 1 - px, px};
      phases_[2 * py + px] = Conv2d(phase, bias, 1, pad);
    }
  }
}

void UpsampleConv2d::forward(const Tensor& x, Tensor& out) const {
  PARADIFF_CHECK(defined(), "upsample conv used before its weights were set");
  PARADIFF_CHECK(x.ndim() == 4, "upsample conv input must be (N, H, W, C), got ", x.describe());
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = out_channels();
  out.expect_shape(Shape{n, 2 * h, 2 * w, c}, "upsample conv output");
  out.expect_dtype(DType::F32, "upsample conv output");
  Tensor phase = Tensor::empty({n, h, w, c}, DType::F32, x.device());
  for (int py = 0; py < 2; ++py) {
    for (int px = 0; px < 2; ++px) {
      phases_[2 * py + px].forward(x, phase);
      dispatch_device("upsample_conv2d", common_device("upsample_conv2d", x, out),
                      [&]<DeviceKind D>() { impl::interleave_phase<D>(phase, py, px, out); });
    }
  }
}

Tensor UpsampleConv2d::forward(const Tensor& x) const {
  PARADIFF_CHECK(x.ndim() == 4, "upsample conv input must be (N, H, W, C), got ", x.describe());
  Tensor out =
      Tensor::empty({x.dim(0), 2 * x.dim(1), 2 * x.dim(2), out_channels()}, DType::F32, x.device());
  forward(x, out);
  return out;
}

}  // namespace paradiff::kernels
