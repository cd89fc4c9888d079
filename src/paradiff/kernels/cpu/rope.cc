// CPU bodies of rope.h: one (batch, token) per OpenMP iteration, in fp32.
#include "paradiff/kernels/rope.h"

#include <cmath>
#include <vector>

#include "paradiff/kernels/cpu/row_io.h"

namespace paradiff::kernels {

namespace {

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

template <>
void impl::rope_tables<DeviceKind::CPU>(const Tensor& positions,
                                        const std::vector<int64_t>& axes_dims, double theta,
                                        Tensor& cos, Tensor& sin) {
  const auto axes = static_cast<int64_t>(axes_dims.size());
  const int64_t s = positions.dim(0), d = cos.dim(1);
  const float* p = positions.data<float>();
  float* c = cos.data<float>();
  float* sn = sin.data<float>();
  for (int64_t row = 0; row < s; ++row) {
    int64_t col = 0;
    for (int64_t a = 0; a < axes; ++a) {
      const int64_t dim = axes_dims[a];
      const double position = p[row * axes + a];
      for (int64_t k = 0; k < dim / 2; ++k) {
        // theta ** (2k / dim) in float64, then its reciprocal, as get_1d_rotary_pos_embed.
        const double freq = 1.0 / std::pow(theta, static_cast<double>(2 * k) / dim);
        const double angle = position * freq;
        const float cv = static_cast<float>(std::cos(angle));
        const float sv = static_cast<float>(std::sin(angle));
        c[row * d + col] = c[row * d + col + 1] = cv;
        sn[row * d + col] = sn[row * d + col + 1] = sv;
        col += 2;
      }
    }
  }
}

template <>
void impl::apply_rope<DeviceKind::CPU>(const Tensor& x, const Tensor& cos, const Tensor& sin,
                                       Tensor& out) {
  rope_rows(x, nullptr, 0.0f, cos, sin, out);
}

template <>
void impl::rms_norm_rope<DeviceKind::CPU>(const Tensor& x, const Tensor& weight, float eps,
                                          const Tensor& cos, const Tensor& sin, Tensor& out) {
  rope_rows(x, weight.data<float>(), eps, cos, sin, out);
}

}  // namespace paradiff::kernels
