// Level body of layer_norm (isa_dispatch.h): one row per OpenMP iteration, the statistics in
// double. Row r uses modulation row r / rows_per_batch (shift and scale may be null).
// `scratch` holds `threads` rows of c floats.
#include "paradiff/kernels/cpu/row_io.h"

void layer_norm_rows(const void* x, DType x_dtype, const float* shift, const float* scale,
                     int64_t rows, int64_t rows_per_batch, int64_t c, float eps, float* scratch,
                     int threads, void* out, DType out_dtype) {
#pragma omp parallel num_threads(threads)
  {
    float* v = scratch + omp_get_thread_num() * c;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      load_row(x, x_dtype, r * c, c, v);
      // Two-pass mean/variance in double for the sums: rows are short (C <= ~20k), and this
      // keeps fp32 LayerNorm within rounding of the double reference.
      double sum = 0.0;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < c; ++i) sum += v[i];
      const float mean = static_cast<float>(sum / c);
      double sq = 0.0;
#pragma omp simd reduction(+ : sq)
      for (int64_t i = 0; i < c; ++i) {
        const float d = v[i] - mean;
        sq += static_cast<double>(d) * d;
      }
      const float inv = static_cast<float>(1.0 / std::sqrt(sq / c + eps));
      if (shift != nullptr) {
        const int64_t b = r / rows_per_batch;
        const float* sh = shift + b * c;
        const float* sc = scale + b * c;
#pragma omp simd
        for (int64_t i = 0; i < c; ++i) v[i] = (v[i] - mean) * inv * (1.0f + sc[i]) + sh[i];
      } else {
#pragma omp simd
        for (int64_t i = 0; i < c; ++i) v[i] = (v[i] - mean) * inv;
      }
      store_row(v, out, out_dtype, r * c, c);
    }
  }
}
