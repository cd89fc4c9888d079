#include "paradiff/kernels/modulation.h"

#include "paradiff/kernels/checks.h"

namespace paradiff::kernels {

namespace {
void check_rows(const Tensor& x, const Tensor& row, const char* what) {
  PARADIFF_CHECK(x.ndim() == 3, what, ": input must be (B, S, C), got ", x.describe());
  row.expect_shape(Shape{x.dim(0), x.dim(2)}, what);
  row.expect_dtype(DType::F32, what);
}
}  // namespace

void modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, Tensor& out) {
  expect_f32_or_bf16(x, "modulate input");
  expect_f32_or_bf16(out, "modulate output");
  check_rows(x, shift, "modulate shift");
  check_rows(x, scale, "modulate scale");
  PARADIFF_CHECK(out.shape() == x.shape(), "modulate output ", out.describe(),
                 " does not match input ", x.describe());
  dispatch_device("modulate", common_device("modulate", x, shift, scale, out),
                  [&]<DeviceKind D>() { impl::modulate<D>(x, shift, scale, out); });
}

void gated_residual_add(Tensor& x, const Tensor& gate, const Tensor& y) {
  x.expect_dtype(DType::F32, "gated residual target");
  expect_f32_or_bf16(y, "gated residual branch");
  check_rows(x, gate, "gated residual gate");
  PARADIFF_CHECK(y.shape() == x.shape(), "gated residual branch ", y.describe(), " does not match ",
                 x.describe());
  dispatch_device("gated_residual_add", common_device("gated_residual_add", x, gate, y),
                  [&]<DeviceKind D>() { impl::gated_residual_add<D>(x, gate, y); });
}

}  // namespace paradiff::kernels
