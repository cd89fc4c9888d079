// Level body of l2_norm (isa_dispatch.h): one row (position) per OpenMP iteration, the sum of
// squares in double, the scaling (and SiLU) in vec_math.h's vocabulary.
#include "paradiff/kernels/cpu/vec_math.h"

// Below this many elements one thread is faster than waking a team.
constexpr int64_t kL2NormParallelMin = 1 << 15;

// torch's F.normalize clamps the norm at this value (its default eps).
constexpr double kL2NormFloor = 1e-12;

void l2_norm_rows(const float* src, const float* gamma, float scale, int64_t rows, int64_t c,
                  bool silu, float* dst) {
#pragma omp parallel for schedule(static) if (rows * c > kL2NormParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = src + r * c;
    float* y = dst + r * c;
    double sq = 0.0;
#pragma omp simd reduction(+ : sq)
    for (int64_t i = 0; i < c; ++i) sq += static_cast<double>(x[i]) * x[i];
    const double norm = std::sqrt(sq) > kL2NormFloor ? std::sqrt(sq) : kL2NormFloor;
    const float s = static_cast<float>(static_cast<double>(scale) / norm);
    int64_t i = 0;
#if defined(PARADIFF_VEC_LANES)
    const VecF vs = vset(s);
    for (; i + kLanes <= c; i += kLanes) {
      VecF v = vmul(vmul(vload(x + i), vs), vload(gamma + i));
      if (silu) v = vsilu(v);
      vstore(y + i, v);
    }
#endif
    for (; i < c; ++i) {
      const float v = x[i] * s * gamma[i];
      y[i] = silu ? silu_scalar(v) : v;
    }
  }
}
