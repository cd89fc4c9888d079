#include "paradiff/kernels/linear.h"

#include <vector>

namespace paradiff::kernels {

Linear::Linear(const Tensor& weight, const Tensor& bias, DType compute)
    : compute_(compute), device_(weight.device()) {
  PARADIFF_CHECK(weight.ndim() == 2, "linear weight must be [out, in], got ", weight.describe());
  PARADIFF_CHECK(compute == DType::F32 || compute == DType::BF16,
                 "linear compute dtype must be f32 or bf16, got ", dtype_name(compute));
  PARADIFF_CHECK(is_floating(weight.dtype()), "linear weight must be floating point, got ",
                 weight.describe());
  out_ = weight.dim(0);
  in_ = weight.dim(1);
  PARADIFF_CHECK(in_ > 0 && out_ > 0, "linear weight has an empty dimension: ", weight.describe());
  if (bias.defined()) bias.expect_shape(Shape{out_}, "linear bias");
  has_bias_ = bias.defined();
  mode_ = gemm_mode_for(compute);
  impl_ = dispatch_device("linear", common_device("linear", weight, bias), [&]<DeviceKind D>() {
    return impl::make_linear<D>(weight, bias, mode_);
  });
}

void Linear::forward(const Tensor& x, Tensor& out, Activation activation, bool accumulate) const {
  PARADIFF_CHECK(defined(), "linear layer used before its weights were set");
  PARADIFF_CHECK(x.ndim() >= 1 && x.dim(-1) == in_, "linear input ", x.describe(),
                 ": last dim must be ", in_);
  PARADIFF_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::BF16,
                 "linear input must be f32 or bf16, got ", x.describe());
  PARADIFF_CHECK(out.dtype() == DType::F32 || out.dtype() == DType::BF16,
                 "linear output must be f32 or bf16, got ", out.describe());
  const int64_t m = x.numel() / in_;
  PARADIFF_CHECK(out.ndim() >= 1 && out.dim(-1) == out_ && out.numel() / out_ == m,
                 "linear output ", out.describe(), " does not fit input ", x.describe(), " with ",
                 out_, " output features");
  const Device device = common_device("linear", x, out);
  PARADIFF_CHECK(device == device_, "linear: input ", x.describe(),
                 " is not on the layer's device ", device_name(device_));
  if (m == 0) return;
  // bf16 activations of a layer computed in fp32 reach the device as they are (it widens them).
  const bool widened = mode_ == GemmMode::Bf16StoredF32 || mode_ == GemmMode::Fp8StoredF32;
  impl_->forward(widened ? x : x.as(gemm_operand_dtype(mode_)), out, activation, accumulate);
}

size_t Linear::weight_bytes() const {
  return impl_ ? impl_->weight_bytes() : 0;
}

Tensor Linear::forward(const Tensor& x, DType out_dtype, Activation activation) const {
  PARADIFF_CHECK(x.ndim() >= 1, "linear input must have at least one dim");
  std::vector<int64_t> dims = x.shape().to_vector();
  dims.back() = out_;
  Tensor out = Tensor::empty(Shape(dims), out_dtype, x.device());
  forward(x, out, activation);
  return out;
}

}  // namespace paradiff::kernels
