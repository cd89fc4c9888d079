// Writing images as PNG (libpng).
#pragma once

#include <string>
#include <string_view>

#include "paradiff/core/tensor.h"

namespace paradiff {

// image: (3, H, W) F32 in [0, 1] (values outside are clamped), written as 8-bit RGB with
// round(v · 255), as diffusers' numpy_to_pil does. Errors name the path and the reason.
void write_png(const std::string& path, const Tensor& image);

// The same PNG as write_png writes, byte for byte, as a string of bytes (for an HTTP answer).
std::string encode_png(const Tensor& image);

// The largest width or height a PNG may claim (libpng's user limit): a header is refused before
// its rows are allocated.
constexpr unsigned kMaxPngSide = 16384;

// Reads an 8-bit RGB or RGBA PNG (palette and 16-bit expanded or stripped) as (3, H, W) F32 in
// [0, 1] (alpha dropped). Errors name the path and the reason.
Tensor read_png(const std::string& path);
// The same from the file's bytes; `name` names them in errors.
Tensor decode_png(std::string_view bytes, const std::string& name);

}  // namespace paradiff
