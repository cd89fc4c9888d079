#include "paradiff/kernels/activations.h"

#include "paradiff/kernels/checks.h"

namespace paradiff::kernels {

namespace {
void check_elementwise(const Tensor& x, const Tensor& out, const char* name) {
  expect_f32_or_bf16(x, name);
  expect_f32_or_bf16(out, name);
  PARADIFF_CHECK(x.shape() == out.shape(), name, ": output ", out.describe(),
                 " does not match input ", x.describe());
}
}  // namespace

void gelu_tanh(const Tensor& x, Tensor& out) {
  check_elementwise(x, out, "gelu_tanh");
  dispatch_device("gelu_tanh", common_device("gelu_tanh", x, out),
                  [&]<DeviceKind D>() { impl::gelu_tanh<D>(x, out); });
}

void silu(const Tensor& x, Tensor& out) {
  check_elementwise(x, out, "silu");
  dispatch_device("silu", common_device("silu", x, out),
                  [&]<DeviceKind D>() { impl::silu<D>(x, out); });
}

}  // namespace paradiff::kernels
