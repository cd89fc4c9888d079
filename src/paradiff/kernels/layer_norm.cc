#include "paradiff/kernels/layer_norm.h"

#include "paradiff/kernels/checks.h"

namespace paradiff::kernels {

void layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                         Tensor& out) {
  expect_f32_or_bf16(x, "layer_norm input");
  expect_f32_or_bf16(out, "layer_norm output");
  PARADIFF_CHECK(x.ndim() == 3, "layer_norm_modulate input must be (B, S, C), got ", x.describe());
  PARADIFF_CHECK(out.shape() == x.shape(), "layer_norm output ", out.describe(),
                 " does not match input ", x.describe());
  PARADIFF_CHECK(shift.defined() == scale.defined(),
                 "layer_norm_modulate needs both shift and scale, or neither");
  const int64_t b = x.dim(0), c = x.dim(2);
  if (shift.defined()) {
    shift.expect_shape(Shape{b, c}, "adaLN shift");
    scale.expect_shape(Shape{b, c}, "adaLN scale");
    shift.expect_dtype(DType::F32, "adaLN shift");
    scale.expect_dtype(DType::F32, "adaLN scale");
  }
  dispatch_device("layer_norm_modulate", common_device("layer_norm_modulate", x, shift, scale, out),
                  [&]<DeviceKind D>() { impl::layer_norm_modulate<D>(x, shift, scale, eps, out); });
}

void layer_norm(const Tensor& x, float eps, Tensor& out) {
  expect_f32_or_bf16(x, "layer_norm input");
  expect_f32_or_bf16(out, "layer_norm output");
  PARADIFF_CHECK(x.ndim() >= 1, "layer_norm input must have at least one dim");
  PARADIFF_CHECK(out.shape() == x.shape(), "layer_norm output ", out.describe(),
                 " does not match input ", x.describe());
  dispatch_device("layer_norm", common_device("layer_norm", x, out),
                  [&]<DeviceKind D>() { impl::layer_norm<D>(x, eps, out); });
}

}  // namespace paradiff::kernels
