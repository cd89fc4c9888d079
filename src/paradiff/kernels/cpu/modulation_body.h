// Level body of modulation (isa_dispatch.h): one row of c channels per OpenMP iteration, in
// fp32; row r uses modulation row r / s. `scratch` holds `threads` rows of c floats.
#include "paradiff/kernels/cpu/row_io.h"

void modulate_rows(const void* x, DType x_dtype, const float* shift, const float* scale,
                   int64_t rows, int64_t s, int64_t c, float* scratch, int threads, void* out,
                   DType out_dtype) {
#pragma omp parallel num_threads(threads)
  {
    float* v = scratch + omp_get_thread_num() * c;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* shr = shift + (r / s) * c;
      const float* scr = scale + (r / s) * c;
      load_row(x, x_dtype, r * c, c, v);
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) v[i] = v[i] * (1.0f + scr[i]) + shr[i];
      store_row(v, out, out_dtype, r * c, c);
    }
  }
}

// x += gate * y, x in fp32, y in y_dtype.
void gated_residual_rows(float* x, const float* gate, const void* y, DType y_dtype, int64_t rows,
                         int64_t s, int64_t c, float* scratch, int threads) {
#pragma omp parallel num_threads(threads)
  {
    float* v = scratch + omp_get_thread_num() * c;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* gr = gate + (r / s) * c;
      float* xr = x + r * c;
      load_row(y, y_dtype, r * c, c, v);
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) xr[i] += gr[i] * v[i];
    }
  }
}
