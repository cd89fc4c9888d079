// Layerwise casting, as diffusers' `enable_layerwise_casting(storage_dtype, compute_dtype)`: the
// GEMM layers (Linear, Conv2d) built while a WeightStorageScope is installed on the thread keep
// their weights in a narrower storage dtype than they compute in, and widen them for each GEMM.
// Today: bf16 storage for fp32 compute (GemmMode::Bf16StoredF32: the weights rounded to bf16
// once, half the memory, fp32 activations and arithmetic). Installed around a model's loading
// (e.g. `--storage-dtype bf16`); layers built outside a scope store what they compute in.
#pragma once

#include <string_view>

#include "paradiff/core/dtype.h"

namespace paradiff::kernels {

class WeightStorageScope {
 public:
  // storage: F32 (no narrowing) or BF16.
  explicit WeightStorageScope(DType storage);
  ~WeightStorageScope();
  WeightStorageScope(const WeightStorageScope&) = delete;
  WeightStorageScope& operator=(const WeightStorageScope&) = delete;

 private:
  DType previous_;
};

// The innermost scope's storage dtype on this thread; F32 (no narrowing) without one.
DType weight_storage_dtype();

// "fp32"/"f32" -> F32, "bf16" -> BF16; anything else (fp8 included, not supported yet) is refused
// with a message naming the value and the choices.
DType parse_weight_storage(std::string_view name);

}  // namespace paradiff::kernels
