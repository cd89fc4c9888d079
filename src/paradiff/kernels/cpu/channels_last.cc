// CPU bodies of channels_last.h: channels_last_body.h's variant for the active instruction-set
// level.
#include "paradiff/kernels/channels_last.h"

#include "paradiff/kernels/cpu/isa_dispatch.h"

namespace paradiff::kernels {

PARADIFF_ISA_DECLARE(void transpose_batched(const void* in, DType dtype, float* out, int64_t batch,
                                            int64_t rows, int64_t cols))

template <>
void impl::nchw_to_nhwc<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  PARADIFF_ISA_SELECT_NO_BF16(transpose_batched)
  (x.raw_data(), x.dtype(), out.data<float>(), n, c, h * w);
}

template <>
void impl::nhwc_to_nchw<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  PARADIFF_ISA_SELECT_NO_BF16(transpose_batched)
  (x.data<float>(), DType::F32, out.data<float>(), n, h * w, c);
}

}  // namespace paradiff::kernels
