// Level body of rms_norm (isa_dispatch.h): one row per OpenMP iteration, the sum of squares in
// double. `scratch` holds `threads` rows of d floats.
#include "paradiff/kernels/cpu/row_io.h"

void rms_norm_rows(const void* x, DType x_dtype, const float* w, float eps, int64_t rows, int64_t d,
                   float* scratch, int threads, void* out, DType out_dtype) {
#pragma omp parallel num_threads(threads)
  {
    float* v = scratch + omp_get_thread_num() * d;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      load_row(x, x_dtype, r * d, d, v);
      double sq = 0.0;
#pragma omp simd reduction(+ : sq)
      for (int64_t i = 0; i < d; ++i) sq += static_cast<double>(v[i]) * v[i];
      const float inv = static_cast<float>(1.0 / std::sqrt(sq / d + eps));
#pragma omp simd
      for (int64_t i = 0; i < d; ++i) v[i] = v[i] * inv * w[i];
      store_row(v, out, out_dtype, r * d, d);
    }
  }
}
