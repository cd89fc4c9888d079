// Layout changes between PyTorch's NCHW images and the channels-last (NHWC) layout the
// convolution kernels use.
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// (N, C, H, W) -> (N, H, W, C), any floating input dtype, F32 output.
Tensor nchw_to_nhwc(const Tensor& x);
// (N, H, W, C) F32 -> (N, C, H, W) F32.
Tensor nhwc_to_nchw(const Tensor& x);

// Per-device bodies, chosen in channels_last.cc (cpu/channels_last.cc); out is preallocated.
namespace impl {
template <DeviceKind D>
void nchw_to_nhwc(const Tensor& x, Tensor& out);
template <DeviceKind D>
void nhwc_to_nchw(const Tensor& x, Tensor& out);
}  // namespace impl

}  // namespace paradiff::kernels
