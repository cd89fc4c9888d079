#include "paradiff/kernels/pointwise.h"

#include "paradiff/kernels/checks.h"

namespace paradiff::kernels {

namespace {
void check_same_shape(const Tensor& x, const Tensor& out, const char* name) {
  expect_f32_or_bf16(x, name);
  expect_f32_or_bf16(out, name);
  PARADIFF_CHECK(x.shape() == out.shape(), name, ": output ", out.describe(),
                 " does not match input ", x.describe());
}
}  // namespace

void gelu_erf(const Tensor& x, Tensor& out) {
  check_same_shape(x, out, "gelu_erf");
  dispatch_device("gelu_erf", common_device("gelu_erf", x, out),
                  [&]<DeviceKind D>() { impl::gelu_erf<D>(x, out); });
}

void quick_gelu(const Tensor& x, Tensor& out) {
  check_same_shape(x, out, "quick_gelu");
  dispatch_device("quick_gelu", common_device("quick_gelu", x, out),
                  [&]<DeviceKind D>() { impl::quick_gelu<D>(x, out); });
}

void relu(const Tensor& x, Tensor& out) {
  check_same_shape(x, out, "relu");
  dispatch_device("relu", common_device("relu", x, out),
                  [&]<DeviceKind D>() { impl::relu<D>(x, out); });
}

void multiply(const Tensor& a, const Tensor& b, Tensor& out) {
  check_same_shape(a, out, "multiply");
  check_same_shape(b, out, "multiply");
  dispatch_device("multiply", common_device("multiply", a, b, out),
                  [&]<DeviceKind D>() { impl::multiply<D>(a, b, out); });
}

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  check_same_shape(a, out, "add");
  check_same_shape(b, out, "add");
  dispatch_device("add", common_device("add", a, b, out),
                  [&]<DeviceKind D>() { impl::add<D>(a, b, out); });
}

bool all_finite(const Tensor& x) {
  expect_f32_or_bf16(x, "all_finite");
  return dispatch_device("all_finite", x.device(),
                         [&]<DeviceKind D>() { return impl::all_finite<D>(x); });
}

void fill(Tensor& out, float value) {
  expect_f32_or_bf16(out, "fill");
  dispatch_device("fill", out.device(), [&]<DeviceKind D>() { impl::fill<D>(out, value); });
}

void scale(const Tensor& x, float s, Tensor& out) {
  check_same_shape(x, out, "scale");
  dispatch_device("scale", common_device("scale", x, out),
                  [&]<DeviceKind D>() { impl::scale<D>(x, s, out); });
}

void divide_scalar(const Tensor& x, float s, Tensor& out) {
  check_same_shape(x, out, "divide_scalar");
  dispatch_device("divide_scalar", common_device("divide_scalar", x, out),
                  [&]<DeviceKind D>() { impl::divide_scalar<D>(x, s, out); });
}

void add_scalar(const Tensor& x, float s, Tensor& out) {
  check_same_shape(x, out, "add_scalar");
  dispatch_device("add_scalar", common_device("add_scalar", x, out),
                  [&]<DeviceKind D>() { impl::add_scalar<D>(x, s, out); });
}

void exp(const Tensor& x, Tensor& out) {
  check_same_shape(x, out, "exp");
  dispatch_device("exp", common_device("exp", x, out),
                  [&]<DeviceKind D>() { impl::exp<D>(x, out); });
}

void clamp(const Tensor& x, float lo, float hi, Tensor& out) {
  check_same_shape(x, out, "clamp");
  PARADIFF_CHECK(!(hi < lo), "clamp: lo ", lo, " is above hi ", hi);
  dispatch_device("clamp", common_device("clamp", x, out),
                  [&]<DeviceKind D>() { impl::clamp<D>(x, lo, hi, out); });
}

void scale_shift_clamp(const Tensor& x, float scale, float shift, float lo, float hi, Tensor& out) {
  check_same_shape(x, out, "scale_shift_clamp");
  PARADIFF_CHECK(!(hi < lo), "scale_shift_clamp: lo ", lo, " is above hi ", hi);
  dispatch_device(
      "scale_shift_clamp", common_device("scale_shift_clamp", x, out),
      [&]<DeviceKind D>() { impl::scale_shift_clamp<D>(x, scale, shift, lo, hi, out); });
}

}  // namespace paradiff::kernels
