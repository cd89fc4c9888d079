// Writing .safetensors files: CLI outputs (latents, prompt embeddings) and test fixtures. The
// layout matches the reference writer's, so the files load in Python's safetensors and torch.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "paradiff/core/tensor.h"

namespace paradiff {

// The file image: header padded with spaces so the data starts 8-byte aligned, tensors laid out
// by decreasing element size and then by name (as the reference writer does), so that every
// tensor's data is aligned to its element size and SafetensorsFile can return views. Dtypes are
// written as F32, BF16, F16 and I64. Throws on an undefined tensor or the reserved name
// "__metadata__".
std::vector<std::byte> serialize_safetensors(
    const std::map<std::string, Tensor>& tensors,
    const std::map<std::string, std::string>& metadata = {});

// The same bytes written to `path` (replaced if it exists). Errors name the path and the system's
// reason; a partly written file is removed.
void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace paradiff
