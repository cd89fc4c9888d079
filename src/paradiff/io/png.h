// Writing images as PNG (libpng).
#pragma once

#include <string>

#include "paradiff/core/tensor.h"

namespace paradiff {

// image: (3, H, W) F32 in [0, 1] (values outside are clamped), written as 8-bit RGB with
// round(v · 255), as diffusers' numpy_to_pil does. Errors name the path and the reason.
void write_png(const std::string& path, const Tensor& image);

// The same PNG as write_png writes, byte for byte, as a string of bytes (for an HTTP answer).
std::string encode_png(const Tensor& image);

// Reads an 8-bit RGB or RGBA PNG as (3, H, W) F32 in [0, 1] (alpha dropped).
Tensor read_png(const std::string& path);

}  // namespace paradiff
