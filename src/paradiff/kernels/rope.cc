#include "paradiff/kernels/rope.h"

#include <numeric>

#include "paradiff/kernels/checks.h"

namespace paradiff::kernels {

namespace {
void check_rope_args(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& out) {
  expect_f32_or_bf16(x, "rope input");
  expect_f32_or_bf16(out, "rope output");
  PARADIFF_CHECK(x.ndim() == 4, "rope input must be (B, S, H, D), got ", x.describe());
  PARADIFF_CHECK(out.shape() == x.shape(), "rope output ", out.describe(), " does not match input ",
                 x.describe());
  PARADIFF_CHECK(x.dim(3) % 2 == 0, "rope needs an even head dim, got ", x.dim(3));
  const Shape table{x.dim(1), x.dim(3)};
  cos.expect_shape(table, "rope cos table");
  sin.expect_shape(table, "rope sin table");
  cos.expect_dtype(DType::F32, "rope cos table");
  sin.expect_dtype(DType::F32, "rope sin table");
}
}  // namespace

void rope_tables(const Tensor& positions, const std::vector<int64_t>& axes_dims, double theta,
                 Tensor& cos, Tensor& sin) {
  const auto axes = static_cast<int64_t>(axes_dims.size());
  PARADIFF_CHECK(positions.ndim() == 2 && positions.dim(1) == axes,
                 "rope_tables: positions must be (S, ", axes, "), got ", positions.describe());
  positions.expect_dtype(DType::F32, "rope_tables positions");
  for (int64_t d : axes_dims)
    PARADIFF_CHECK(d >= 0 && d % 2 == 0, "rope_tables: axis widths must be even, got ", d);
  const Shape table{positions.dim(0),
                    std::accumulate(axes_dims.begin(), axes_dims.end(), int64_t{0})};
  cos.expect_shape(table, "rope_tables cos");
  sin.expect_shape(table, "rope_tables sin");
  cos.expect_dtype(DType::F32, "rope_tables cos");
  sin.expect_dtype(DType::F32, "rope_tables sin");
  dispatch_device(
      "rope_tables", common_device("rope_tables", positions, cos, sin),
      [&]<DeviceKind D>() { impl::rope_tables<D>(positions, axes_dims, theta, cos, sin); });
}

void apply_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, Tensor& out) {
  check_rope_args(x, cos, sin, out);
  dispatch_device("apply_rope", common_device("apply_rope", x, cos, sin, out),
                  [&]<DeviceKind D>() { impl::apply_rope<D>(x, cos, sin, out); });
}

void rms_norm_rope(const Tensor& x, const Tensor& weight, float eps, const Tensor& cos,
                   const Tensor& sin, Tensor& out) {
  check_rope_args(x, cos, sin, out);
  weight.expect_shape(Shape{x.dim(3)}, "rms_norm weight");
  weight.expect_dtype(DType::F32, "rms_norm weight");
  dispatch_device("rms_norm_rope", common_device("rms_norm_rope", x, weight, cos, sin, out),
                  [&]<DeviceKind D>() { impl::rms_norm_rope<D>(x, weight, eps, cos, sin, out); });
}

}  // namespace paradiff::kernels
