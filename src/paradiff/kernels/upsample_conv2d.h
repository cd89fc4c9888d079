// Nearest-neighbour 2x upsampling followed by a 3x3 convolution with padding 1 (diffusers'
// Upsample2D), without building the upsampled image: each of the four output phases
// (even/odd row, even/odd column) reads a 2x2 window of the low-resolution input, so it is a
// 2x2 convolution whose weights are sums of the 3x3 taps that land on the same input pixel.
// 4·(2x2) = 16 multiply-adds per input pixel and channel pair instead of 4·9 = 36: 4/9 of the
// work of the two-step computation, equal to it up to float rounding.
#pragma once

#include <array>

#include "paradiff/kernels/conv2d.h"

namespace paradiff::kernels {

class UpsampleConv2d {
 public:
  UpsampleConv2d() = default;
  // weight: [out, in, 3, 3] (any floating dtype); bias: [out] or undefined.
  UpsampleConv2d(const Tensor& weight, const Tensor& bias);

  bool defined() const { return phases_[0].defined(); }
  int64_t in_channels() const { return phases_[0].in_channels(); }
  int64_t out_channels() const { return phases_[0].out_channels(); }

  // x: (N, H, W, in) F32 channels-last; out: preallocated (N, 2H, 2W, out) F32, not
  // overlapping x.
  void forward(const Tensor& x, Tensor& out) const;
  Tensor forward(const Tensor& x) const;

 private:
  std::array<Conv2d, 4> phases_;  // index 2·row_phase + column_phase
};

// Per-device body, chosen in upsample_conv2d.cc (cpu/upsample_conv2d.cc): phase pixel (i, j)
// of phase (py, px), (N, H, W, C), becomes output pixel (2i + py, 2j + px).
namespace impl {
template <DeviceKind D>
void interleave_phase(const Tensor& phase, int py, int px, Tensor& out);
}  // namespace impl

}  // namespace paradiff::kernels
