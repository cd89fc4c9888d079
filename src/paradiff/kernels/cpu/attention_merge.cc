// CPU body of attention_merge.h: attention_merge_body.h's variant for the active
// instruction-set level.
#include "paradiff/kernels/attention_merge.h"

#include "paradiff/kernels/cpu/isa_dispatch.h"

namespace paradiff::kernels {

PARADIFF_ISA_DECLARE(void merge_attention_rows(float* o, float* l, const float* ob, const float* lb,
                                               int64_t rows, int64_t d))

template <>
void impl::merge_attention<DeviceKind::CPU>(Tensor& out, Tensor& lse, const Tensor& out_b,
                                            const Tensor& lse_b) {
  PARADIFF_ISA_SELECT_NO_BF16(merge_attention_rows)
  (out.data<float>(), lse.data<float>(), out_b.data<float>(), lse_b.data<float>(), lse.numel(),
   out.dim(3));
}

}  // namespace paradiff::kernels
