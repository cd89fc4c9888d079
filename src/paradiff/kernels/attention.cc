// kernels::attention: the input checks and the dispatch to a device's body (cpu/attention.cc).
#include "paradiff/kernels/attention.h"

#include <cmath>

namespace paradiff::kernels {
namespace {

bool is_compute_dtype(DType dtype) {
  return dtype == DType::F32 || dtype == DType::BF16;
}

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                  const Tensor* lse, float scale) {
  PARADIFF_CHECK(q.ndim() == 4, "attention: q must have shape (B, Sq, H, D), got ", q.describe());
  const int64_t b = q.dim(0), h = q.dim(2), d = q.dim(3);
  PARADIFF_CHECK(d >= 1, "attention: head dim D of q must be at least 1, got ", q.describe());
  PARADIFF_CHECK(is_compute_dtype(q.dtype()), "attention: q must be f32 or bf16, got ",
                 q.describe());
  PARADIFF_CHECK(k.ndim() == 4 && k.dim(0) == b && k.dim(2) == h && k.dim(3) == d,
                 "attention: k must have shape (B, Skv, H, D) = [", b, ", Skv, ", h, ", ", d,
                 "] to match q ", q.describe(), ", got ", k.describe());
  PARADIFF_CHECK(v.shape() == k.shape(), "attention: v must have the shape of k ",
                 k.shape().to_string(), ", got ", v.describe());
  PARADIFF_CHECK(k.dtype() == q.dtype() && v.dtype() == q.dtype(),
                 "attention: q, k and v must have the same dtype, got q ", q.describe(), ", k ",
                 k.describe(), ", v ", v.describe());
  PARADIFF_CHECK(out.shape() == q.shape(), "attention: out must have the shape of q ",
                 q.shape().to_string(), ", got ", out.describe());
  PARADIFF_CHECK(is_compute_dtype(out.dtype()), "attention: out must be f32 or bf16, got ",
                 out.describe());
  if (lse != nullptr) {
    const Shape want{b, q.dim(1), h};
    PARADIFF_CHECK(lse->shape() == want && lse->dtype() == DType::F32, "attention: lse must be f32",
                   want.to_string(), " (B, Sq, H), got ", lse->describe());
  }
  PARADIFF_CHECK(std::isfinite(scale), "attention: scale must be finite, got ", scale);
}

}  // namespace

void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, Tensor* lse,
               float scale) {
  check_inputs(q, k, v, out, lse, scale);
  dispatch_device("attention",
                  common_device("attention", q, k, v, out, lse != nullptr ? *lse : Tensor()),
                  [&]<DeviceKind D>() { impl::attention<D>(q, k, v, out, lse, scale); });
}

}  // namespace paradiff::kernels
