#include "paradiff/kernels/l2_norm.h"

#include <cmath>

namespace paradiff::kernels {

void l2_norm(const Tensor& x, const Tensor& gamma, float scale, Tensor& out, bool silu) {
  x.expect_dtype(DType::F32, "l2_norm input");
  out.expect_dtype(DType::F32, "l2_norm output");
  PARADIFF_CHECK(x.ndim() >= 1, "l2_norm input must be (..., C), got ", x.describe());
  PARADIFF_CHECK(out.shape() == x.shape(), "l2_norm output ", out.describe(),
                 " does not match input ", x.describe());
  PARADIFF_CHECK(std::isfinite(scale), "l2_norm: scale must be finite, got ", scale);
  gamma.expect_shape(Shape{x.dim(-1)}, "l2_norm gamma");
  gamma.expect_dtype(DType::F32, "l2_norm gamma");
  dispatch_device("l2_norm", common_device("l2_norm", x, gamma, out),
                  [&]<DeviceKind D>() { impl::l2_norm<D>(x, gamma, scale, out, silu); });
}

}  // namespace paradiff::kernels
