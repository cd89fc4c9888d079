// CPU bodies of layer_norm.h: the rows are normalised by layer_norm_body.h's variant for the
// active instruction-set level.
#include "paradiff/kernels/layer_norm.h"

#include <omp.h>

#include <vector>

#include "paradiff/kernels/cpu/isa_dispatch.h"

namespace paradiff::kernels {

PARADIFF_ISA_DECLARE(void layer_norm_rows(const void* x, DType x_dtype, const float* shift,
                                          const float* scale, int64_t rows, int64_t rows_per_batch,
                                          int64_t c, float eps, float* scratch, int threads,
                                          void* out, DType out_dtype))

namespace {

void normalize_rows(const Tensor& x, const float* shift, const float* scale, int64_t rows,
                    int64_t rows_per_batch, int64_t c, float eps, Tensor& out) {
  const int threads = omp_get_max_threads();
  std::vector<float> scratch(static_cast<size_t>(threads * c));
  PARADIFF_ISA_SELECT(layer_norm_rows)
  (x.raw_data(), x.dtype(), shift, scale, rows, rows_per_batch, c, eps, scratch.data(), threads,
   out.raw_data(), out.dtype());
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
