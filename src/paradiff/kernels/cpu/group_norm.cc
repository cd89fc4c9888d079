// CPU body of group_norm.h: per-thread channel sums in double, then one affine pass.
#include "paradiff/kernels/group_norm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "paradiff/kernels/cpu/vec_math.h"

namespace paradiff::kernels {

namespace {

// Below this many elements one thread is faster than waking a team.
constexpr int64_t kParallelMin = 1 << 15;

// y = (x - mean)·a + b over one row of c channels, then SiLU if asked. The mean is subtracted
// first, as a float pair (hi + lo, about 48 bits), rather than folded into b: groups whose
// spread is small next to their mean stay accurate.
inline void affine_row(const float* x, const float* m, const float* lo, const float* a,
                       const float* b, int64_t c, bool silu, float* y) {
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= c; i += 16) {
    __m512 v =
        _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    if (silu) {
      const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), v));
      v = _mm512_div_ps(v, _mm512_add_ps(one, e));
    }
    _mm512_storeu_ps(y + i, v);
  }
#endif
  for (; i < c; ++i) {
    const float v = ((x[i] - m[i]) - lo[i]) * a[i] + b[i];
    y[i] = silu ? silu_scalar(v) : v;
  }
}

}  // namespace

template <>
void impl::group_norm<DeviceKind::CPU>(const Tensor& x, int64_t num_groups, const Tensor& gamma,
                                       const Tensor& beta, float eps, Tensor& out, bool silu) {
  const int64_t c = x.dim(-1), n = x.dim(0);
  const Tensor g32 = gamma.to(DType::F32), b32 = beta.to(DType::F32);
  if (x.numel() == 0) return;
  const int64_t positions = x.numel() / (n * c);
  const int64_t rows = n * positions;
  const int64_t per_group = c / num_groups;
  const float* src = x.data<float>();
  float* dst = out.data<float>();

  // Per-channel sums and sums of squares per batch entry, in double, one copy per thread.
  const int threads = omp_get_max_threads();
  const size_t stride = static_cast<size_t>(n * c);
  std::vector<double> sums(stride * threads, 0.0), squares(stride * threads, 0.0);
#pragma omp parallel num_threads(threads) if (x.numel() > kParallelMin)
  {
    const size_t t = static_cast<size_t>(omp_get_thread_num());
    double* s = sums.data() + t * stride;
    double* q = squares.data() + t * stride;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = src + r * c;
      double* sr = s + (r / positions) * c;
      double* qr = q + (r / positions) * c;
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) {
        const double v = row[i];
        sr[i] += v;
        qr[i] += v * v;
      }
    }
  }

  // Per (n, channel) mean (hi, lo), scale a = gamma·rstd and shift b = beta.
  std::vector<float> m(stride), lo(stride), a(stride), b(stride);
  const double count = static_cast<double>(positions) * static_cast<double>(per_group);
  for (int64_t bn = 0; bn < n; ++bn) {
    for (int64_t g = 0; g < num_groups; ++g) {
      double sum = 0.0, sq = 0.0;
      for (int t = 0; t < threads; ++t) {
        for (int64_t i = g * per_group; i < (g + 1) * per_group; ++i) {
          sum += sums[t * stride + bn * c + i];
          sq += squares[t * stride + bn * c + i];
        }
      }
      const double mean = sum / count;
      const double var = std::max(sq / count - mean * mean, 0.0);
      const double rstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
      for (int64_t i = g * per_group; i < (g + 1) * per_group; ++i) {
        const double scale = static_cast<double>(g32.data<float>()[i]) * rstd;
        a[bn * c + i] = static_cast<float>(scale);
        b[bn * c + i] =
            static_cast<float>(static_cast<double>(b32.data<float>()[i]) - mean * scale);
      }
    }
  }

#pragma omp parallel for schedule(static) if (x.numel() > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t bn = r / positions;
    affine_row(src + r * c, m.data() + bn * c, lo.data() + bn * c, a.data() + bn * c,
               b.data() + bn * c, c, silu, dst + r * c);
  }
}

}  // namespace paradiff::kernels
