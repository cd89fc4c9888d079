#include "paradiff/kernels/group_norm.h"

#include <cmath>

namespace paradiff::kernels {

void group_norm(const Tensor& x, int64_t num_groups, const Tensor& gamma, const Tensor& beta,
                float eps, Tensor& out, bool silu) {
  x.expect_dtype(DType::F32, "group_norm input");
  out.expect_dtype(DType::F32, "group_norm output");
  PARADIFF_CHECK(x.ndim() >= 2, "group_norm input must be (N, ..., C), got ", x.describe());
  PARADIFF_CHECK(out.shape() == x.shape(), "group_norm output ", out.describe(),
                 " does not match input ", x.describe());
  const int64_t c = x.dim(-1);
  PARADIFF_CHECK(num_groups >= 1 && c % num_groups == 0, "group_norm: ", c,
                 " channels cannot be split into ", num_groups, " groups");
  PARADIFF_CHECK(eps >= 0 && std::isfinite(eps), "group_norm: eps must be >= 0, got ", eps);
  gamma.expect_shape(Shape{c}, "group_norm weight");
  beta.expect_shape(Shape{c}, "group_norm bias");
  dispatch_device(
      "group_norm", common_device("group_norm", x, gamma, beta, out),
      [&]<DeviceKind D>() { impl::group_norm<D>(x, num_groups, gamma, beta, eps, out, silu); });
}

}  // namespace paradiff::kernels
