// CPU bodies of modulation.h: the rows are computed by modulation_body.h's variant for the active
// instruction-set level.
#include "paradiff/kernels/modulation.h"

#include <omp.h>

#include <vector>

#include "paradiff/kernels/cpu/isa_dispatch.h"

namespace paradiff::kernels {

PARADIFF_ISA_DECLARE(void modulate_rows(const void* x, DType x_dtype, const float* shift,
                                        const float* scale, int64_t rows, int64_t s, int64_t c,
                                        float* scratch, int threads, void* out, DType out_dtype))
PARADIFF_ISA_DECLARE(void gated_residual_rows(float* x, const float* gate, const void* y,
                                              DType y_dtype, int64_t rows, int64_t s, int64_t c,
                                              float* scratch, int threads))

template <>
void impl::modulate<DeviceKind::CPU>(const Tensor& x, const Tensor& shift, const Tensor& scale,
                                     Tensor& out) {
  const int64_t b = x.dim(0), s = x.dim(1), c = x.dim(2);
  const int threads = omp_get_max_threads();
  std::vector<float> scratch(static_cast<size_t>(threads * c));
  PARADIFF_ISA_SELECT(modulate_rows)
  (x.raw_data(), x.dtype(), shift.data<float>(), scale.data<float>(), b * s, s, c, scratch.data(),
   threads, out.raw_data(), out.dtype());
}

template <>
void impl::gated_residual_add<DeviceKind::CPU>(Tensor& x, const Tensor& gate, const Tensor& y) {
  const int64_t b = x.dim(0), s = x.dim(1), c = x.dim(2);
  const int threads = omp_get_max_threads();
  std::vector<float> scratch(static_cast<size_t>(threads * c));
  PARADIFF_ISA_SELECT(gated_residual_rows)
  (x.data<float>(), gate.data<float>(), y.raw_data(), y.dtype(), b * s, s, c, scratch.data(),
   threads);
}

}  // namespace paradiff::kernels
