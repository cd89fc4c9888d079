// The 2x2 patch packing of latent images into transformer tokens that FLUX and Qwen-Image
// pipelines use (feature index c·4 + dy·2 + dx), its inverse, and the tokens' grid positions.
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// x: (B, C, H, W) F32, H and W even; out: preallocated (B, (H/2)·(W/2), 4C) F32.
void patchify_2x2(const Tensor& x, Tensor& out);
// The inverse: x (B, (H/2)·(W/2), 4C) F32; out: preallocated (B, C, H, W) F32.
void unpatchify_2x2(const Tensor& x, Tensor& out);
// ids: preallocated (h·w, 3) F32; row y·w + x becomes [0, y, x] (row-major over an h x w grid).
void grid_position_ids(int64_t h, int64_t w, Tensor& ids);

// Per-device bodies, chosen in patchify.cc (cpu/patchify.cc).
namespace impl {
template <DeviceKind D>
void patchify_2x2(const Tensor& x, Tensor& out);
template <DeviceKind D>
void unpatchify_2x2(const Tensor& x, Tensor& out);
template <DeviceKind D>
void grid_position_ids(int64_t h, int64_t w, Tensor& ids);
}  // namespace impl

}  // namespace paradiff::kernels
