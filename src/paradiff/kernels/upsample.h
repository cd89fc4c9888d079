// Nearest-neighbour resampling on channels-last activations.
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// F.interpolate(x, scale_factor=2.0, mode="nearest") for channels-last images:
// out[n, y, x, c] = in[n, y / 2, x / 2, c]. x: (N, H, W, C) F32; out: preallocated
// (N, 2H, 2W, C) F32, not overlapping x.
void upsample_nearest2x(const Tensor& x, Tensor& out);

// Per-device body, chosen in upsample.cc (cpu/upsample.cc).
namespace impl {
template <DeviceKind D>
void upsample_nearest2x(const Tensor& x, Tensor& out);
}  // namespace impl

}  // namespace paradiff::kernels
