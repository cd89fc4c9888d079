#include "paradiff/kernels/rms_norm.h"

#include "paradiff/kernels/checks.h"

namespace paradiff::kernels {

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  expect_f32_or_bf16(x, "rms_norm input");
  expect_f32_or_bf16(out, "rms_norm output");
  PARADIFF_CHECK(x.ndim() >= 1, "rms_norm input must have at least one dim");
  PARADIFF_CHECK(out.shape() == x.shape(), "rms_norm output ", out.describe(),
                 " does not match input ", x.describe());
  const int64_t d = x.dim(-1);
  weight.expect_shape(Shape{d}, "rms_norm weight");
  weight.expect_dtype(DType::F32, "rms_norm weight");
  dispatch_device("rms_norm", common_device("rms_norm", x, weight, out),
                  [&]<DeviceKind D>() { impl::rms_norm<D>(x, weight, eps, out); });
}

}  // namespace paradiff::kernels
