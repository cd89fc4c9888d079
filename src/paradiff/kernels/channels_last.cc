#include "paradiff/kernels/channels_last.h"

namespace paradiff::kernels {

Tensor nchw_to_nhwc(const Tensor& x) {
  PARADIFF_CHECK(x.ndim() == 4, "expected an NCHW image batch (N, C, H, W), got ", x.describe());
  PARADIFF_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::BF16 || x.dtype() == DType::F16,
                 "expected a floating-point image batch, got ", x.describe());
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  return dispatch_device("nchw_to_nhwc", x.device(), [&]<DeviceKind D>() {
    Tensor out = Tensor::empty({n, h, w, c}, DType::F32, x.device());
    impl::nchw_to_nhwc<D>(x, out);
    return out;
  });
}

Tensor nhwc_to_nchw(const Tensor& x) {
  PARADIFF_CHECK(x.ndim() == 4, "expected a channels-last batch (N, H, W, C), got ", x.describe());
  x.expect_dtype(DType::F32, "channels-last batch");
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  return dispatch_device("nhwc_to_nchw", x.device(), [&]<DeviceKind D>() {
    Tensor out = Tensor::empty({n, c, h, w}, DType::F32, x.device());
    impl::nhwc_to_nchw<D>(x, out);
    return out;
  });
}

}  // namespace paradiff::kernels
