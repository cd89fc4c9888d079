// CPU body of l2_norm.h: l2_norm_body.h's variant for the active instruction-set level.
#include "paradiff/kernels/l2_norm.h"

#include "paradiff/kernels/cpu/isa_dispatch.h"

namespace paradiff::kernels {

PARADIFF_ISA_DECLARE(void l2_norm_rows(const float* src, const float* gamma, float scale,
                                       int64_t rows, int64_t c, bool silu, float* dst))

template <>
void impl::l2_norm<DeviceKind::CPU>(const Tensor& x, const Tensor& gamma, float scale, Tensor& out,
                                    bool silu) {
  const int64_t c = x.dim(-1);
  const int64_t rows = c == 0 ? 0 : x.numel() / c;
  PARADIFF_ISA_SELECT_NO_BF16(l2_norm_rows)
  (x.data<float>(), gamma.data<float>(), scale, rows, c, silu, out.data<float>());
}

}  // namespace paradiff::kernels
