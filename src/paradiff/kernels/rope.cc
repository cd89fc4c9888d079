#include "paradiff/kernels/rope.h"

#include <cmath>
#include <vector>

#include "paradiff/kernels/row_io.h"

namespace paradiff::kernels {

namespace {

void check_rope_args(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& out) {
  expect_f32_or_bf16(x, "rope input");
  expect_f32_or_bf16(out, "rope output");
  PARADIFF_CHECK(x.ndim() == 4, "rope input must be (B, S, H, D), got ", x.describe());
  PARADIFF_CHECK(out.shape() == x.shape(), "rope output ", out.describe(), " does not match input ",
                 x.describe());
  PARADIFF_CHECK(x.dim(3) % 2 == 0, "rope needs an even head dim, got ", x.dim(3));
  const Shape table{x.dim(1), x.dim(3)};
  cos.expect_shape(table, "rope cos table");
  sin.expect_shape(table, "rope sin table");
  cos.expect_dtype(DType::F32, "rope cos table");
  sin.expect_dtype(DType::F32, "rope sin table");
}

// One kernel for both entry points: with `weight` set, each row is RMS-normalised first.
void rope_rows(const Tensor& x, const float* weight, float eps, const Tensor& cos,
               const Tensor& sin, Tensor& out) {
  const int64_t b = x.dim(0), s = x.dim(1), h = x.dim(2), d = x.dim(3);
  const float* cs = cos.data<float>();
  const float* sn = sin.data<float>();
#pragma omp parallel
  {
    std::vector<float> in(static_cast<size_t>(d)), res(static_cast<size_t>(d));
#pragma omp for collapse(2) schedule(static)
    for (int64_t bi = 0; bi < b; ++bi) {
      for (int64_t si = 0; si < s; ++si) {
        const float* c = cs + si * d;
        const float* sv = sn + si * d;
        for (int64_t hi = 0; hi < h; ++hi) {
          const int64_t offset = ((bi * s + si) * h + hi) * d;
          float* v = in.data();
          load_row(x.raw_data(), x.dtype(), offset, d, v);
          if (weight != nullptr) {
            double sq = 0.0;
#pragma omp simd reduction(+ : sq)
            for (int64_t i = 0; i < d; ++i) sq += static_cast<double>(v[i]) * v[i];
            const float inv = static_cast<float>(1.0 / std::sqrt(sq / d + eps));
#pragma omp simd
            for (int64_t i = 0; i < d; ++i) v[i] = v[i] * inv * weight[i];
          }
          float* r = res.data();
#pragma omp simd
          for (int64_t k = 0; k < d; k += 2) {
            r[k] = v[k] * c[k] - v[k + 1] * sv[k];
            r[k + 1] = v[k + 1] * c[k + 1] + v[k] * sv[k + 1];
          }
          store_row(r, out.raw_data(), out.dtype(), offset, d);
        }
      }
    }
  }
}

}  // namespace

void apply_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, Tensor& out) {
  check_rope_args(x, cos, sin, out);
  rope_rows(x, nullptr, 0.0f, cos, sin, out);
}

void rms_norm_rope(const Tensor& x, const Tensor& weight, float eps, const Tensor& cos,
                   const Tensor& sin, Tensor& out) {
  check_rope_args(x, cos, sin, out);
  weight.expect_shape(Shape{x.dim(3)}, "rms_norm weight");
  weight.expect_dtype(DType::F32, "rms_norm weight");
  rope_rows(x, weight.data<float>(), eps, cos, sin, out);
}

}  // namespace paradiff::kernels
