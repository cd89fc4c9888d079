#include "paradiff/kernels/modulation.h"

#include <vector>

#include "paradiff/kernels/row_io.h"

namespace paradiff::kernels {

namespace {
void check_rows(const Tensor& x, const Tensor& row, const char* what) {
  PARADIFF_CHECK(x.ndim() == 3, what, ": input must be (B, S, C), got ", x.describe());
  row.expect_shape(Shape{x.dim(0), x.dim(2)}, what);
  row.expect_dtype(DType::F32, what);
}
}  // namespace

void modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, Tensor& out) {
  expect_f32_or_bf16(x, "modulate input");
  expect_f32_or_bf16(out, "modulate output");
  check_rows(x, shift, "modulate shift");
  check_rows(x, scale, "modulate scale");
  PARADIFF_CHECK(out.shape() == x.shape(), "modulate output ", out.describe(),
                 " does not match input ", x.describe());
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

void gated_residual_add(Tensor& x, const Tensor& gate, const Tensor& y) {
  x.expect_dtype(DType::F32, "gated residual target");
  expect_f32_or_bf16(y, "gated residual branch");
  check_rows(x, gate, "gated residual gate");
  PARADIFF_CHECK(y.shape() == x.shape(), "gated residual branch ", y.describe(), " does not match ",
                 x.describe());
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
