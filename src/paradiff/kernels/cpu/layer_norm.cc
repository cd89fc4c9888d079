// CPU bodies of layer_norm.h: one row per OpenMP iteration, the statistics in double.
#include "paradiff/kernels/layer_norm.h"

#include <cmath>
#include <vector>

#include "paradiff/kernels/cpu/row_io.h"

namespace paradiff::kernels {

namespace {

// Normalises `rows` rows of width c; row r uses modulation row r / rows_per_batch.
void normalize_rows(const Tensor& x, const float* shift, const float* scale, int64_t rows,
                    int64_t rows_per_batch, int64_t c, float eps, Tensor& out) {
#pragma omp parallel
  {
    std::vector<float> buf(static_cast<size_t>(c));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      float* v = buf.data();
      load_row(x.raw_data(), x.dtype(), r * c, c, v);
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
      store_row(v, out.raw_data(), out.dtype(), r * c, c);
    }
  }
}

}  // namespace

template <>
void impl::layer_norm_modulate<DeviceKind::CPU>(const Tensor& x, const Tensor& shift,
                                                const Tensor& scale, float eps, Tensor& out) {
  const int64_t b = x.dim(0), s = x.dim(1), c = x.dim(2);
  if (shift.defined()) {
    normalize_rows(x, shift.data<float>(), scale.data<float>(), b * s, s, c, eps, out);
  } else {
    normalize_rows(x, nullptr, nullptr, b * s, s, c, eps, out);
  }
}

template <>
void impl::layer_norm<DeviceKind::CPU>(const Tensor& x, float eps, Tensor& out) {
  const int64_t c = x.dim(-1);
  const int64_t rows = c == 0 ? 0 : x.numel() / c;
  normalize_rows(x, nullptr, nullptr, rows, rows, c, eps, out);
}

}  // namespace paradiff::kernels
