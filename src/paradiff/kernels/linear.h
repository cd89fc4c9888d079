// linear(x, W, b) with PyTorch's convention (W is [out, in]): y = x W^T + b. The weights are
// prepared once, at construction, by the device's implementation (Linear::Impl); on the CPU that
// is cpu/onednn_linear.cc: oneDNN matmul with the weights prepacked into its preferred layout.
// A bf16 layer on a CPU without native bf16 keeps its weights in bf16 and computes in fp32
// (GemmMode::Bf16StoredF32, kernels/gemm_mode.h; precision in docs/precision.md).
#pragma once

#include <cstdint>
#include <memory>

#include "paradiff/core/tensor.h"
#include "paradiff/kernels/gemm_mode.h"

namespace paradiff::kernels {

// Elementwise function fused into the GEMM's output (no extra memory pass).
enum class Activation { None, GeluTanh, Silu };

class Linear {
 public:
  // What a device provides: the prepared weights and the GEMM. Inputs reach it checked, with at
  // least one row, x in the mode's operand dtype (gemm_operand_dtype), except in
  // GemmMode::Bf16StoredF32 where x may also be bf16 (the device widens it).
  class Impl {
   public:
    virtual ~Impl() = default;
    virtual void forward(const Tensor& x, Tensor& out, Activation activation,
                         bool accumulate) const = 0;
    // Bytes of the prepared weights as stored (without the bias).
    virtual size_t weight_bytes() const = 0;
  };

  Linear() = default;
  // weight: [out, in] in any floating dtype; bias: [out] or an undefined Tensor for none.
  // compute: F32 (fp32 GEMM) or BF16 (bf16 operands, fp32 accumulation; where bf16 is not
  // native: bf16-rounded weights stored in bf16, fp32 operands and arithmetic); weights are
  // converted once here. The layer lives on the weight's device.
  Linear(const Tensor& weight, const Tensor& bias, DType compute);

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  // The dtype asked for (BF16 also when it is computed in fp32, see mode()).
  DType compute_dtype() const { return compute_; }
  // How the weights are stored and the GEMM computes (gemm_mode_name for summaries).
  GemmMode mode() const { return mode_; }
  // Bytes of the prepared weights as stored (the bias excluded).
  size_t weight_bytes() const;
  bool has_bias() const { return has_bias_; }
  bool defined() const { return in_ > 0; }
  Device device() const { return device_; }

  // x: (..., in) in F32 or BF16 (converted to the compute dtype if it differs);
  // out: preallocated (..., out) in F32 or BF16. out must not alias x. With `accumulate`,
  // out = act(out + x W^T + b): the sum comes before the activation.
  void forward(const Tensor& x, Tensor& out, Activation activation = Activation::None,
               bool accumulate = false) const;
  Tensor forward(const Tensor& x, DType out_dtype = DType::F32,
                 Activation activation = Activation::None) const;

 private:
  int64_t in_ = 0, out_ = 0;
  DType compute_ = DType::F32;
  GemmMode mode_ = GemmMode::F32;
  bool has_bias_ = false;
  Device device_;
  std::shared_ptr<const Impl> impl_;  // shared by copies, as the weights are
};

// Per-device implementations, chosen in linear.cc (cpu/onednn_linear.cc). weight and bias are
// checked; bias may be undefined.
namespace impl {
template <DeviceKind D>
std::shared_ptr<const Linear::Impl> make_linear(const Tensor& weight, const Tensor& bias,
                                                GemmMode mode);
}  // namespace impl

}  // namespace paradiff::kernels
