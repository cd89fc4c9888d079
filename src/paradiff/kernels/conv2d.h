// 2-D convolution with PyTorch's Conv2d parameters (weight [out, in, kh, kw], optional bias,
// stride, zero padding) on channels-last (NHWC) activations, through oneDNN's convolution
// primitive with the weights prepacked once, at construction, into oneDNN's preferred layout
// (as Linear does for matmul).
//
// Why NHWC: oneDNN's AVX-512 convolution (brgconv) runs channels-last natively, as fast as its
// own blocked layout on the VAE's shapes and faster than NCHW; the norms read each channel
// group as contiguous runs; and the VAE's attention sees (B, H·W, C) rows directly.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include <dnnl.hpp>

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// Zero padding on each side, in input pixels; PyTorch's `padding=p` is {p, p, p, p}.
struct Padding2d {
  int64_t top = 0, bottom = 0, left = 0, right = 0;
  static Padding2d same(int64_t p) { return {p, p, p, p}; }
};

class Conv2d {
 public:
  Conv2d() = default;
  // weight: [out, in, kh, kw] in any floating dtype (converted to f32 once); bias: [out] or an
  // undefined Tensor. stride >= 1, the same in both directions.
  Conv2d(const Tensor& weight, const Tensor& bias, int64_t stride, Padding2d padding);

  bool defined() const { return in_ > 0; }
  int64_t in_channels() const { return in_; }
  int64_t out_channels() const { return out_; }
  int64_t kernel_h() const { return kh_; }
  int64_t kernel_w() const { return kw_; }
  int64_t stride() const { return stride_; }
  const Padding2d& padding() const { return pad_; }
  // Output height/width for an input of h x w (PyTorch's formula); throws if empty.
  int64_t out_height(int64_t h) const;
  int64_t out_width(int64_t w) const;

  // x: (N, H, W, in) F32, channels-last; out: preallocated (N, Ho, Wo, out) F32, not
  // overlapping x. With `accumulate`, out = out + conv(x) + bias (oneDNN's sum post-op: a
  // residual added without another pass).
  void forward(const Tensor& x, Tensor& out, bool accumulate = false) const;
  Tensor forward(const Tensor& x) const;

 private:
  struct Prepared {
    dnnl::convolution_forward primitive;
    std::shared_ptr<dnnl::memory> weights;  // packed for this primitive
  };
  const Prepared& prepared_for(int64_t n, int64_t h, int64_t w, bool accumulate) const;
  dnnl::convolution_forward::primitive_desc make_pd(int64_t n, int64_t h, int64_t w,
                                                    bool accumulate) const;

  int64_t in_ = 0, out_ = 0, kh_ = 0, kw_ = 0, stride_ = 1;
  Padding2d pad_;
  dnnl::memory::desc packed_desc_;
  std::shared_ptr<dnnl::memory> packed_weights_;
  Tensor bias_;  // F32 [out], or undefined
  // Primitives by (N, H, W, accumulate, threads). If oneDNN wants another weight layout for
  // some shape, the weights are repacked for that layout once (`repacked`, shared by every
  // primitive that wants it).
  struct Cache {
    std::mutex mutex;
    std::map<std::tuple<int64_t, int64_t, int64_t, bool, int>, Prepared> entries;
    std::vector<std::shared_ptr<dnnl::memory>> repacked;
  };
  std::shared_ptr<Cache> cache_ = std::make_shared<Cache>();
};

}  // namespace paradiff::kernels
