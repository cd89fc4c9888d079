#include "paradiff/kernels/upsample.h"

namespace paradiff::kernels {

void upsample_nearest2x(const Tensor& x, Tensor& out) {
  PARADIFF_CHECK(x.ndim() == 4, "upsample_nearest2x input must be (N, H, W, C), got ",
                 x.describe());
  x.expect_dtype(DType::F32, "upsample_nearest2x input");
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  out.expect_shape(Shape{n, 2 * h, 2 * w, c}, "upsample_nearest2x output");
  out.expect_dtype(DType::F32, "upsample_nearest2x output");
  dispatch_device("upsample_nearest2x", common_device("upsample_nearest2x", x, out),
                  [&]<DeviceKind D>() { impl::upsample_nearest2x<D>(x, out); });
}

}  // namespace paradiff::kernels
