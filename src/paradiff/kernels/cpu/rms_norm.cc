// CPU body of rms_norm.h: one row per OpenMP iteration, the sum of squares in double.
#include "paradiff/kernels/rms_norm.h"

#include <cmath>
#include <vector>

#include "paradiff/kernels/cpu/row_io.h"

namespace paradiff::kernels {

template <>
void impl::rms_norm<DeviceKind::CPU>(const Tensor& x, const Tensor& weight, float eps,
                                     Tensor& out) {
  const int64_t d = x.dim(-1);
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
