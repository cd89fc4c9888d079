#include "paradiff/kernels/rms_norm.h"

#include <cmath>
#include <vector>

#include "paradiff/kernels/row_io.h"

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
  const float* w = weight.data<float>();
  const int64_t rows = d == 0 ? 0 : x.numel() / d;
#pragma omp parallel
  {
    std::vector<float> buf(static_cast<size_t>(d));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      float* v = buf.data();
      load_row(x.raw_data(), x.dtype(), r * d, d, v);
      double sq = 0.0;
#pragma omp simd reduction(+ : sq)
      for (int64_t i = 0; i < d; ++i) sq += static_cast<double>(v[i]) * v[i];
      const float inv = static_cast<float>(1.0 / std::sqrt(sq / d + eps));
#pragma omp simd
      for (int64_t i = 0; i < d; ++i) v[i] = v[i] * inv * w[i];
      store_row(v, out.raw_data(), out.dtype(), r * d, d);
    }
  }
}

}  // namespace paradiff::kernels
