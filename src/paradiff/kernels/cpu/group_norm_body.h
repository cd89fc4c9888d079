// Level body of group_norm (isa_dispatch.h): per-thread channel sums in double, then one affine
// pass with an optional SiLU, the vector part in vec_math.h's vocabulary.
#include "paradiff/kernels/cpu/vec_math.h"

// Below this many elements one thread is faster than waking a team.
constexpr int64_t kGroupNormParallelMin = 1 << 15;

// Per-channel sums and sums of squares of `rows` rows of c channels, row r adding into batch
// entry r / positions: thread t writes sums/squares + t * stride (stride = batch * c, zeroed by
// the caller).
void group_norm_sums(const float* src, int64_t rows, int64_t positions, int64_t c, int threads,
                     double* sums, double* squares, int64_t stride) {
#pragma omp parallel num_threads(threads) if (rows * c > kGroupNormParallelMin)
  {
    const int64_t t = omp_get_thread_num();
    double* s = sums + t * stride;
    double* q = squares + t * stride;
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
}

// y = x·a + b per channel (a, b of batch entry r / positions), then SiLU if asked.
void group_norm_apply(const float* src, int64_t rows, int64_t positions, int64_t c, const float* a,
                      const float* b, bool silu, float* dst) {
#pragma omp parallel for schedule(static) if (rows * c > kGroupNormParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t bn = r / positions;
    const float* x = src + r * c;
    const float* ar = a + bn * c;
    const float* br = b + bn * c;
    float* y = dst + r * c;
    int64_t i = 0;
#if defined(PARADIFF_VEC_LANES)
    for (; i + kLanes <= c; i += kLanes) {
      VecF v = vfma(vload(x + i), vload(ar + i), vload(br + i));
      if (silu) v = vsilu(v);
      vstore(y + i, v);
    }
#endif
    for (; i < c; ++i) {
      const float v = x[i] * ar[i] + br[i];
      y[i] = silu ? silu_scalar(v) : v;
    }
  }
}
