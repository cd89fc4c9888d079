// CPU bodies of rope.h: the tables in double here; the rotation by rope_body.h's variant for the
// active instruction-set level.
#include "paradiff/kernels/rope.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "paradiff/kernels/cpu/isa_dispatch.h"

namespace paradiff::kernels {

PARADIFF_ISA_DECLARE(void rope_rows(const void* x, DType x_dtype, const float* weight, float eps,
                                    const float* cos, const float* sin, int64_t b, int64_t s,
                                    int64_t h, int64_t d, float* scratch, int threads, void* out,
                                    DType out_dtype))

namespace {

// One kernel for both entry points: with `weight` set, each row is RMS-normalised first.
void rotate_rows(const Tensor& x, const float* weight, float eps, const Tensor& cos,
                 const Tensor& sin, Tensor& out) {
  const int64_t b = x.dim(0), s = x.dim(1), h = x.dim(2), d = x.dim(3);
  const int threads = omp_get_max_threads();
  std::vector<float> scratch(static_cast<size_t>(threads * 2 * d));
  PARADIFF_ISA_SELECT(rope_rows)
  (x.raw_data(), x.dtype(), weight, eps, cos.data<float>(), sin.data<float>(), b, s, h, d,
   scratch.data(), threads, out.raw_data(), out.dtype());
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
  rotate_rows(x, nullptr, 0.0f, cos, sin, out);
}

template <>
void impl::rms_norm_rope<DeviceKind::CPU>(const Tensor& x, const Tensor& weight, float eps,
                                          const Tensor& cos, const Tensor& sin, Tensor& out) {
  rotate_rows(x, weight.data<float>(), eps, cos, sin, out);
}

}  // namespace paradiff::kernels
