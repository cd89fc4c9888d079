// FluxPipeline's latent plumbing: the 2x2 patch packing of VAE latents into transformer tokens
// (feature index c·4 + dy·2 + dx), its inverse, the image position ids, and the size rules.
#pragma once

#include <cstdint>

#include "paradiff/core/tensor.h"

namespace paradiff::pipeline {

// (B, C, H, W) -> (B, (H/2)·(W/2), 4C); H and W must be even.
Tensor pack_latents(const Tensor& latents);
// (B, (H/2)·(W/2), 4C) -> (B, C, H, W), for latent height H and width W.
Tensor unpack_latents(const Tensor& packed, int64_t height, int64_t width);
// (h·w, 3) rows [0, y, x] in row-major order over an h x w grid of packed tokens.
Tensor latent_image_ids(int64_t packed_height, int64_t packed_width);

// The latent height for an image height: 2 · (height / (vae_scale_factor · 2)), as diffusers
// rounds sizes that are not multiples of vae_scale_factor · 2 (with a warning: see
// checked_image_size).
int64_t latent_size(int64_t image_size, int64_t vae_scale_factor);
// Rounds an image size down to a multiple of 2 · vae_scale_factor, warning when it changes
// (diffusers' behaviour); an image smaller than one patch is an error.
int64_t checked_image_size(int64_t size, int64_t vae_scale_factor, const char* what);

}  // namespace paradiff::pipeline
