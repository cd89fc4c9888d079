// CPU bodies of modulation.h: one row per OpenMP iteration, in fp32.
#include "paradiff/kernels/modulation.h"

#include <vector>

#include "paradiff/kernels/cpu/row_io.h"

namespace paradiff::kernels {

template <>
void impl::modulate<DeviceKind::CPU>(const Tensor& x, const Tensor& shift, const Tensor& scale,
                                     Tensor& out) {
  const int64_t b = x.dim(0), s = x.dim(1), c = x.dim(2);
  const float* sh = shift.data<float>();
  const float* sc = scale.data<float>();
#pragma omp parallel
  {
    std::vector<float> buf(static_cast<size_t>(c));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < b * s; ++r) {
      const float* shr = sh + (r / s) * c;
      const float* scr = sc + (r / s) * c;
      float* v = buf.data();
      load_row(x.raw_data(), x.dtype(), r * c, c, v);
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) v[i] = v[i] * (1.0f + scr[i]) + shr[i];
      store_row(v, out.raw_data(), out.dtype(), r * c, c);
    }
  }
}

template <>
void impl::gated_residual_add<DeviceKind::CPU>(Tensor& x, const Tensor& gate, const Tensor& y) {
  const int64_t b = x.dim(0), s = x.dim(1), c = x.dim(2);
  float* xs = x.data<float>();
  const float* g = gate.data<float>();
#pragma omp parallel
  {
    std::vector<float> buf(static_cast<size_t>(c));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < b * s; ++r) {
      const float* gr = g + (r / s) * c;
      float* xr = xs + r * c;
      float* v = buf.data();
      load_row(y.raw_data(), y.dtype(), r * c, c, v);
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) xr[i] += gr[i] * v[i];
    }
  }
}

}  // namespace paradiff::kernels
