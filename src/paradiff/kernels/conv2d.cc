#include "paradiff/kernels/conv2d.h"

namespace paradiff::kernels {

int64_t Conv2d::Geometry::out_height(int64_t h) const {
  const int64_t span = h + pad.top + pad.bottom - kh;
  PARADIFF_CHECK(span >= 0, "conv2d: input height ", h, " is smaller than the kernel (", kh,
                 ") with padding ", pad.top, "+", pad.bottom);
  return span / stride + 1;
}

int64_t Conv2d::Geometry::out_width(int64_t w) const {
  const int64_t span = w + pad.left + pad.right - kw;
  PARADIFF_CHECK(span >= 0, "conv2d: input width ", w, " is smaller than the kernel (", kw,
                 ") with padding ", pad.left, "+", pad.right);
  return span / stride + 1;
}

Conv2d::Conv2d(const Tensor& weight, const Tensor& bias, int64_t stride, Padding2d padding,
               DType compute)
    : device_(weight.device()), compute_(compute) {
  PARADIFF_CHECK(weight.ndim() == 4, "conv2d weight must be [out, in, kh, kw], got ",
                 weight.describe());
  PARADIFF_CHECK(is_floating(weight.dtype()), "conv2d weight must be floating point, got ",
                 weight.describe());
  Geometry g;
  g.out = weight.dim(0);
  g.in = weight.dim(1);
  g.kh = weight.dim(2);
  g.kw = weight.dim(3);
  g.stride = stride;
  g.pad = padding;
  PARADIFF_CHECK(g.out > 0 && g.in > 0 && g.kh > 0 && g.kw > 0,
                 "conv2d weight has an empty dim: ", weight.describe());
  PARADIFF_CHECK(stride >= 1, "conv2d stride must be >= 1, got ", stride);
  PARADIFF_CHECK(g.pad.top >= 0 && g.pad.bottom >= 0 && g.pad.left >= 0 && g.pad.right >= 0,
                 "conv2d padding must be >= 0");
  if (bias.defined()) bias.expect_shape(Shape{g.out}, "conv2d bias");
  PARADIFF_CHECK(compute == DType::F32 || compute == DType::BF16,
                 "conv2d compute dtype must be f32 or bf16, got ", dtype_name(compute));
  mode_ = gemm_mode_for(compute);
  PARADIFF_CHECK(mode_ != GemmMode::Fp8StoredF32 && mode_ != GemmMode::Fp8StoredBf16,
                 "fp8 weight storage is implemented for linear layers, not convolutions");
  impl_ = dispatch_device("conv2d", common_device("conv2d", weight, bias), [&]<DeviceKind D>() {
    return impl::make_conv2d<D>(g, weight, bias, mode_);
  });
  geometry_ = g;
}

void Conv2d::forward(const Tensor& x, Tensor& out, bool accumulate) const {
  PARADIFF_CHECK(defined(), "conv2d used before its weights were set");
  PARADIFF_CHECK(x.ndim() == 4 && x.dim(3) == geometry_.in, "conv2d input must be (N, H, W, ",
                 geometry_.in, ") channels-last, got ", x.describe());
  x.expect_dtype(DType::F32, "conv2d input");
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2);
  const int64_t ho = out_height(h), wo = out_width(w);
  out.expect_shape(Shape{n, ho, wo, geometry_.out}, "conv2d output");
  out.expect_dtype(DType::F32, "conv2d output");
  const Device device = common_device("conv2d", x, out);
  PARADIFF_CHECK(device == device_, "conv2d: input ", x.describe(),
                 " is not on the layer's device ", device_name(device_));
  if (n == 0) return;
  impl_->forward(x, out, accumulate);
}

size_t Conv2d::weight_bytes() const {
  return impl_ ? impl_->weight_bytes() : 0;
}

Tensor Conv2d::forward(const Tensor& x) const {
  PARADIFF_CHECK(x.ndim() == 4, "conv2d input must be (N, H, W, C), got ", x.describe());
  Tensor out = Tensor::empty({x.dim(0), out_height(x.dim(1)), out_width(x.dim(2)), out_channels()},
                             DType::F32, x.device());
  forward(x, out);
  return out;
}

}  // namespace paradiff::kernels
