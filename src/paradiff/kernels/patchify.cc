#include "paradiff/kernels/patchify.h"

namespace paradiff::kernels {

void patchify_2x2(const Tensor& x, Tensor& out) {
  PARADIFF_CHECK(x.ndim() == 4 && x.dim(2) % 2 == 0 && x.dim(3) % 2 == 0,
                 "patchify_2x2 input must be (B, C, H, W) with H and W even, got ", x.describe());
  x.expect_dtype(DType::F32, "patchify_2x2 input");
  const int64_t b = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  out.expect_shape(Shape{b, (h / 2) * (w / 2), 4 * c}, "patchify_2x2 output");
  out.expect_dtype(DType::F32, "patchify_2x2 output");
  dispatch_device("patchify_2x2", common_device("patchify_2x2", x, out),
                  [&]<DeviceKind D>() { impl::patchify_2x2<D>(x, out); });
}

void unpatchify_2x2(const Tensor& x, Tensor& out) {
  PARADIFF_CHECK(out.ndim() == 4 && out.dim(2) % 2 == 0 && out.dim(3) % 2 == 0,
                 "unpatchify_2x2 output must be (B, C, H, W) with H and W even, got ",
                 out.describe());
  const int64_t b = out.dim(0), c = out.dim(1), h = out.dim(2), w = out.dim(3);
  x.expect_shape(Shape{b, (h / 2) * (w / 2), 4 * c}, "unpatchify_2x2 input");
  x.expect_dtype(DType::F32, "unpatchify_2x2 input");
  out.expect_dtype(DType::F32, "unpatchify_2x2 output");
  dispatch_device("unpatchify_2x2", common_device("unpatchify_2x2", x, out),
                  [&]<DeviceKind D>() { impl::unpatchify_2x2<D>(x, out); });
}

void grid_position_ids(int64_t h, int64_t w, Tensor& ids) {
  PARADIFF_CHECK(h >= 0 && w >= 0, "grid_position_ids needs a grid size >= 0, got ", h, "x", w);
  ids.expect_shape(Shape{h * w, 3}, "grid_position_ids output");
  ids.expect_dtype(DType::F32, "grid_position_ids output");
  dispatch_device("grid_position_ids", ids.device(),
                  [&]<DeviceKind D>() { impl::grid_position_ids<D>(h, w, ids); });
}

}  // namespace paradiff::kernels
