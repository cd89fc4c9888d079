// CPU body of l2_norm.h: one row (position) per OpenMP iteration, the sum of squares in double.
#include "paradiff/kernels/l2_norm.h"

#include <algorithm>
#include <cmath>

#include "paradiff/kernels/cpu/vec_math.h"

namespace paradiff::kernels {

namespace {

// Below this many elements one thread is faster than waking a team.
constexpr int64_t kParallelMin = 1 << 15;

// torch's F.normalize clamps the norm at this value (its default eps).
constexpr double kNormFloor = 1e-12;

inline void scale_row(const float* x, const float* gamma, float s, int64_t c, bool silu, float* y) {
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 vs = _mm512_set1_ps(s), one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= c; i += 16) {
    __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), vs), _mm512_loadu_ps(gamma + i));
    if (silu) {
      const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), v));
      v = _mm512_div_ps(v, _mm512_add_ps(one, e));
    }
    _mm512_storeu_ps(y + i, v);
  }
#endif
  for (; i < c; ++i) {
    const float v = x[i] * s * gamma[i];
    y[i] = silu ? silu_scalar(v) : v;
  }
}

}  // namespace

template <>
void impl::l2_norm<DeviceKind::CPU>(const Tensor& x, const Tensor& gamma, float scale, Tensor& out,
                                    bool silu) {
  const int64_t c = x.dim(-1);
  const int64_t rows = c == 0 ? 0 : x.numel() / c;
  const float* src = x.data<float>();
  const float* g = gamma.data<float>();
  float* dst = out.data<float>();
#pragma omp parallel for schedule(static) if (x.numel() > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = src + r * c;
    double sq = 0.0;
#pragma omp simd reduction(+ : sq)
    for (int64_t i = 0; i < c; ++i) sq += static_cast<double>(row[i]) * row[i];
    const double norm = std::max(std::sqrt(sq), kNormFloor);
    scale_row(row, g, static_cast<float>(static_cast<double>(scale) / norm), c, silu, dst + r * c);
  }
}

}  // namespace paradiff::kernels
