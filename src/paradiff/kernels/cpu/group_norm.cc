// CPU body of group_norm.h: per-thread channel sums in double, then one affine pass, both by
// group_norm_body.h's variant for the active instruction-set level; the statistics in between here.
#include "paradiff/kernels/group_norm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "paradiff/kernels/cpu/isa_dispatch.h"

namespace paradiff::kernels {

PARADIFF_ISA_DECLARE(void group_norm_sums(const float* src, int64_t rows, int64_t positions,
                                          int64_t c, int threads, double* sums, double* squares,
                                          int64_t stride))
PARADIFF_ISA_DECLARE(void group_norm_apply(const float* src, int64_t rows, int64_t positions,
                                           int64_t c, const float* a, const float* b, bool silu,
                                           float* dst))

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
  PARADIFF_ISA_SELECT_NO_BF16(group_norm_sums)
  (src, rows, positions, c, threads, sums.data(), squares.data(), static_cast<int64_t>(stride));

  // Per (n, channel) scale a = gamma·rstd and shift b = beta - mean·a.
  std::vector<float> a(stride), b(stride);
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

  PARADIFF_ISA_SELECT_NO_BF16(group_norm_apply)
  (src, rows, positions, c, a.data(), b.data(), silu, dst);
}

}  // namespace paradiff::kernels
