// Level body of rope (isa_dispatch.h): one (batch, token) per OpenMP iteration, in fp32. With
// `weight` set, each head row is RMS-normalised first. `scratch` holds `threads` x 2 rows of d.
#include "paradiff/kernels/cpu/row_io.h"

void rope_rows(const void* x, DType x_dtype, const float* weight, float eps, const float* cos,
               const float* sin, int64_t b, int64_t s, int64_t h, int64_t d, float* scratch,
               int threads, void* out, DType out_dtype) {
#pragma omp parallel num_threads(threads)
  {
    float* v = scratch + omp_get_thread_num() * 2 * d;
    float* res = v + d;
#pragma omp for collapse(2) schedule(static)
    for (int64_t bi = 0; bi < b; ++bi) {
      for (int64_t si = 0; si < s; ++si) {
        const float* c = cos + si * d;
        const float* sv = sin + si * d;
        for (int64_t hi = 0; hi < h; ++hi) {
          const int64_t offset = ((bi * s + si) * h + hi) * d;
          load_row(x, x_dtype, offset, d, v);
          if (weight != nullptr) {
            double sq = 0.0;
#pragma omp simd reduction(+ : sq)
            for (int64_t i = 0; i < d; ++i) sq += static_cast<double>(v[i]) * v[i];
            const float inv = static_cast<float>(1.0 / std::sqrt(sq / d + eps));
#pragma omp simd
            for (int64_t i = 0; i < d; ++i) v[i] = v[i] * inv * weight[i];
          }
#pragma omp simd
          for (int64_t k = 0; k < d; k += 2) {
            res[k] = v[k] * c[k] - v[k + 1] * sv[k];
            res[k + 1] = v[k + 1] * c[k + 1] + v[k] * sv[k + 1];
          }
          store_row(res, out, out_dtype, offset, d);
        }
      }
    }
  }
}
