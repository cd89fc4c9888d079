// CPU bodies of activations.h: activations_body.h's variant for the active instruction-set level.
#include "paradiff/kernels/activations.h"

#include "paradiff/kernels/cpu/isa_dispatch.h"

namespace paradiff::kernels {

PARADIFF_ISA_DECLARE(void gelu_tanh_chunks(const void* x, DType x_dtype, int64_t n, void* out,
                                           DType out_dtype))
PARADIFF_ISA_DECLARE(void silu_chunks(const void* x, DType x_dtype, int64_t n, void* out,
                                      DType out_dtype))

template <>
void impl::gelu_tanh<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  PARADIFF_ISA_SELECT(gelu_tanh_chunks)
  (x.raw_data(), x.dtype(), x.numel(), out.raw_data(), out.dtype());
}

template <>
void impl::silu<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  PARADIFF_ISA_SELECT(silu_chunks)(x.raw_data(), x.dtype(), x.numel(), out.raw_data(), out.dtype());
}

}  // namespace paradiff::kernels
