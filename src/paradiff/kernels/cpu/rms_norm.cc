// CPU body of rms_norm.h: the rows are normalised by rms_norm_body.h's variant for the active
// instruction-set level.
#include "paradiff/kernels/rms_norm.h"

#include <omp.h>

#include <vector>

#include "paradiff/kernels/cpu/isa_dispatch.h"

namespace paradiff::kernels {

PARADIFF_ISA_DECLARE(void rms_norm_rows(const void* x, DType x_dtype, const float* w, float eps,
                                        int64_t rows, int64_t d, float* scratch, int threads,
                                        void* out, DType out_dtype))

template <>
void impl::rms_norm<DeviceKind::CPU>(const Tensor& x, const Tensor& weight, float eps,
                                     Tensor& out) {
  const int64_t d = x.dim(-1);
  const int64_t rows = d == 0 ? 0 : x.numel() / d;
  const int threads = omp_get_max_threads();
  std::vector<float> scratch(static_cast<size_t>(threads * d));
  PARADIFF_ISA_SELECT(rms_norm_rows)
  (x.raw_data(), x.dtype(), weight.data<float>(), eps, rows, d, scratch.data(), threads,
   out.raw_data(), out.dtype());
}

}  // namespace paradiff::kernels
