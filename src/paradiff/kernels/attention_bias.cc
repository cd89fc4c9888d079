#include "paradiff/kernels/attention_bias.h"

#include <cmath>

#include "paradiff/kernels/checks.h"

namespace paradiff::kernels {

void attention_with_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                         bool causal, float scale, Tensor& out) {
  expect_f32_or_bf16(q, "attention query");
  expect_f32_or_bf16(out, "attention output");
  PARADIFF_CHECK(q.ndim() == 4, "attention query must be (B, S, H, D), got ", q.describe());
  const int64_t b = q.dim(0), sq = q.dim(1), h = q.dim(2), d = q.dim(3);
  PARADIFF_CHECK(k.ndim() == 4 && k.dim(0) == b && k.dim(2) == h && k.dim(3) == d, "attention key ",
                 k.describe(), " does not match query ", q.describe());
  const int64_t skv = k.dim(1);
  PARADIFF_CHECK(v.shape() == k.shape(), "attention value ", v.describe(), " does not match key ",
                 k.describe());
  PARADIFF_CHECK(k.dtype() == q.dtype() && v.dtype() == q.dtype(),
                 "attention q, k, v must share a dtype, got ", q.describe(), ", ", k.describe(),
                 ", ", v.describe());
  out.expect_shape(q.shape(), "attention output");
  if (bias.defined()) {
    bias.expect_dtype(DType::F32, "attention bias");
    bias.expect_shape(Shape{h, sq, skv}, "attention bias");
  }
  PARADIFF_CHECK(!causal || sq == skv, "causal attention needs as many keys as queries, got ", sq,
                 " queries and ", skv, " keys");
  PARADIFF_CHECK(std::isfinite(scale), "attention scale must be finite, got ", scale);
  dispatch_device(
      "attention_with_bias", common_device("attention_with_bias", q, k, v, bias, out),
      [&]<DeviceKind D>() { impl::attention_with_bias<D>(q, k, v, bias, causal, scale, out); });
}

}  // namespace paradiff::kernels
