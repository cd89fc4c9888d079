// CPU bodies of pointwise.h: each operation runs pointwise_body.h's variant for the active
// instruction-set level (fill stays here: a plain store).
#include "paradiff/kernels/pointwise.h"

#include <algorithm>
#include <initializer_list>

#include "paradiff/kernels/cpu/isa_dispatch.h"

namespace paradiff::kernels {

#define PARADIFF_POINTWISE_FN(name)                                                            \
  void pointwise_##name(const void* a, DType a_dtype, const void* b, DType b_dtype, int64_t n, \
                        const float* p, void* out, DType out_dtype)
PARADIFF_ISA_DECLARE(PARADIFF_POINTWISE_FN(gelu_erf))
PARADIFF_ISA_DECLARE(PARADIFF_POINTWISE_FN(quick_gelu))
PARADIFF_ISA_DECLARE(PARADIFF_POINTWISE_FN(relu))
PARADIFF_ISA_DECLARE(PARADIFF_POINTWISE_FN(multiply))
PARADIFF_ISA_DECLARE(PARADIFF_POINTWISE_FN(add))
PARADIFF_ISA_DECLARE(PARADIFF_POINTWISE_FN(scale))
PARADIFF_ISA_DECLARE(PARADIFF_POINTWISE_FN(divide_scalar))
PARADIFF_ISA_DECLARE(PARADIFF_POINTWISE_FN(add_scalar))
PARADIFF_ISA_DECLARE(PARADIFF_POINTWISE_FN(exp))
PARADIFF_ISA_DECLARE(PARADIFF_POINTWISE_FN(clamp))
PARADIFF_ISA_DECLARE(PARADIFF_POINTWISE_FN(scale_shift_clamp))
#undef PARADIFF_POINTWISE_FN
PARADIFF_ISA_DECLARE(bool all_finite_chunks(const void* x, DType dtype, int64_t n))

namespace {

using PointwiseFn = void(const void*, DType, const void*, DType, int64_t, const float*, void*,
                         DType);

// out = fn(x) elementwise, with the operation's scalars.
void unary(PointwiseFn* fn, const Tensor& x, Tensor& out, std::initializer_list<float> p = {}) {
  fn(x.raw_data(), x.dtype(), nullptr, DType::F32, x.numel(), p.begin(), out.raw_data(),
     out.dtype());
}

// out = fn(a, b) elementwise.
void binary(PointwiseFn* fn, const Tensor& a, const Tensor& b, Tensor& out) {
  fn(a.raw_data(), a.dtype(), b.raw_data(), b.dtype(), a.numel(), nullptr, out.raw_data(),
     out.dtype());
}

}  // namespace

template <>
void impl::gelu_erf<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  unary(PARADIFF_ISA_SELECT(pointwise_gelu_erf), x, out);
}

template <>
void impl::quick_gelu<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  unary(PARADIFF_ISA_SELECT(pointwise_quick_gelu), x, out);
}

template <>
void impl::relu<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  unary(PARADIFF_ISA_SELECT(pointwise_relu), x, out);
}

template <>
void impl::multiply<DeviceKind::CPU>(const Tensor& a, const Tensor& b, Tensor& out) {
  binary(PARADIFF_ISA_SELECT(pointwise_multiply), a, b, out);
}

template <>
void impl::add<DeviceKind::CPU>(const Tensor& a, const Tensor& b, Tensor& out) {
  binary(PARADIFF_ISA_SELECT(pointwise_add), a, b, out);
}

template <>
void impl::fill<DeviceKind::CPU>(Tensor& out, float value) {
  dispatch_f32_bf16("fill", out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    std::fill_n(out.data<T>(), out.numel(), from_float<T>(value));
  });
}

template <>
void impl::scale<DeviceKind::CPU>(const Tensor& x, float s, Tensor& out) {
  unary(PARADIFF_ISA_SELECT(pointwise_scale), x, out, {s});
}

template <>
void impl::divide_scalar<DeviceKind::CPU>(const Tensor& x, float s, Tensor& out) {
  unary(PARADIFF_ISA_SELECT(pointwise_divide_scalar), x, out, {s});
}

template <>
void impl::add_scalar<DeviceKind::CPU>(const Tensor& x, float s, Tensor& out) {
  unary(PARADIFF_ISA_SELECT(pointwise_add_scalar), x, out, {s});
}

template <>
void impl::exp<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  unary(PARADIFF_ISA_SELECT(pointwise_exp), x, out);
}

template <>
void impl::clamp<DeviceKind::CPU>(const Tensor& x, float lo, float hi, Tensor& out) {
  unary(PARADIFF_ISA_SELECT(pointwise_clamp), x, out, {lo, hi});
}

template <>
void impl::scale_shift_clamp<DeviceKind::CPU>(const Tensor& x, float scale, float shift, float lo,
                                              float hi, Tensor& out) {
  unary(PARADIFF_ISA_SELECT(pointwise_scale_shift_clamp), x, out, {scale, shift, lo, hi});
}

template <>
bool impl::all_finite<DeviceKind::CPU>(const Tensor& x) {
  return PARADIFF_ISA_SELECT(all_finite_chunks)(x.raw_data(), x.dtype(), x.numel());
}

}  // namespace paradiff::kernels
