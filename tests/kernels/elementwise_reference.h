// Double-precision references for the elementwise kernels' tests.
#pragma once

#include <cmath>
#include <vector>

namespace paradiff::kernels::reference {

inline void layer_norm_row(const double* x, int64_t c, double eps, double* out) {
  double mean = 0, var = 0;
  for (int64_t i = 0; i < c; ++i) mean += x[i];
  mean /= c;
  for (int64_t i = 0; i < c; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= c;
  for (int64_t i = 0; i < c; ++i) out[i] = (x[i] - mean) / std::sqrt(var + eps);
}

inline void rms_norm_row(const double* x, const double* w, int64_t d, double eps, double* out) {
  double sq = 0;
  for (int64_t i = 0; i < d; ++i) sq += x[i] * x[i];
  const double inv = 1.0 / std::sqrt(sq / d + eps);
  for (int64_t i = 0; i < d; ++i) out[i] = x[i] * inv * w[i];
}

inline void rope_row(const double* x, const double* c, const double* s, int64_t d, double* out) {
  for (int64_t k = 0; k < d; k += 2) {
    out[k] = x[k] * c[k] - x[k + 1] * s[k];
    out[k + 1] = x[k + 1] * c[k + 1] + x[k] * s[k + 1];
  }
}

}  // namespace paradiff::kernels::reference
