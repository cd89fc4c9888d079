// 2-D convolution with PyTorch's Conv2d parameters (weight [out, in, kh, kw], optional bias,
// stride, zero padding) on channels-last (NHWC) activations. The weights are prepared once, at
// construction, by the device's implementation (Conv2d::Impl); on the CPU that is
// cpu/onednn_conv2d.cc: oneDNN's convolution primitive with the weights prepacked into its
// preferred layout (as Linear does for matmul). A bf16 layer keeps its weights in bf16; without
// native bf16 they are widened per call and the convolution runs in fp32
// (GemmMode::Bf16StoredF32, as Linear).
//
// Why NHWC: oneDNN's AVX-512 convolution (brgconv) runs channels-last natively, as fast as its
// own blocked layout on the VAE's shapes and faster than NCHW; the norms read each channel
// group as contiguous runs; and the VAE's attention sees (B, H·W, C) rows directly.
#pragma once

#include <cstdint>
#include <memory>

#include "paradiff/core/tensor.h"
#include "paradiff/kernels/gemm_mode.h"

namespace paradiff::kernels {

// Zero padding on each side, in input pixels; PyTorch's `padding=p` is {p, p, p, p}.
struct Padding2d {
  int64_t top = 0, bottom = 0, left = 0, right = 0;
  static Padding2d same(int64_t p) { return {p, p, p, p}; }
};

class Conv2d {
 public:
  // The layer's sizes, shared with its implementation.
  struct Geometry {
    int64_t in = 0, out = 0, kh = 0, kw = 0, stride = 1;
    Padding2d pad;
    // Output height/width for an input of h x w (PyTorch's formula); throws if empty.
    int64_t out_height(int64_t h) const;
    int64_t out_width(int64_t w) const;
  };

  // What a device provides: the prepared weights and the convolution. Inputs reach it checked,
  // with at least one image.
  class Impl {
   public:
    virtual ~Impl() = default;
    virtual void forward(const Tensor& x, Tensor& out, bool accumulate) const = 0;
    // Bytes of the prepared weights as stored (the bias excluded).
    virtual size_t weight_bytes() const = 0;
  };

  Conv2d() = default;
  // weight: [out, in, kh, kw] in any floating dtype (converted to the compute dtype once); bias:
  // [out] or an undefined Tensor. stride >= 1, the same in both directions. compute: F32, or
  // BF16 (bf16 weights; the input rounded to bf16 where bf16 is native, else kept in f32 and
  // computed in fp32). The layer lives on the weight's device.
  Conv2d(const Tensor& weight, const Tensor& bias, int64_t stride, Padding2d padding,
         DType compute = DType::F32);

  bool defined() const { return geometry_.in > 0; }
  int64_t in_channels() const { return geometry_.in; }
  int64_t out_channels() const { return geometry_.out; }
  int64_t kernel_h() const { return geometry_.kh; }
  int64_t kernel_w() const { return geometry_.kw; }
  int64_t stride() const { return geometry_.stride; }
  const Padding2d& padding() const { return geometry_.pad; }
  Device device() const { return device_; }
  DType compute_dtype() const { return compute_; }
  GemmMode mode() const { return mode_; }
  // Bytes of the prepared weights as stored (the bias excluded).
  size_t weight_bytes() const;
  int64_t out_height(int64_t h) const { return geometry_.out_height(h); }
  int64_t out_width(int64_t w) const { return geometry_.out_width(w); }

  // x: (N, H, W, in) F32, channels-last; out: preallocated (N, Ho, Wo, out) F32, not
  // overlapping x. With `accumulate`, out = out + conv(x) + bias (a residual added without
  // another pass).
  void forward(const Tensor& x, Tensor& out, bool accumulate = false) const;
  Tensor forward(const Tensor& x) const;

 private:
  Geometry geometry_;
  Device device_;
  DType compute_ = DType::F32;
  GemmMode mode_ = GemmMode::F32;
  std::shared_ptr<const Impl> impl_;  // shared by copies, as the weights are
};

// Per-device implementations, chosen in conv2d.cc (cpu/onednn_conv2d.cc). weight and bias are
// checked; bias may be undefined.
namespace impl {
template <DeviceKind D>
std::shared_ptr<const Conv2d::Impl> make_conv2d(const Conv2d::Geometry& geometry,
                                                const Tensor& weight, const Tensor& bias,
                                                GemmMode mode);
}  // namespace impl

}  // namespace paradiff::kernels
