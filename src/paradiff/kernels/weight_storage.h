// Layerwise casting, as diffusers' `enable_layerwise_casting(storage_dtype, compute_dtype)`: the
// GEMM layers (Linear, Conv2d) built while a WeightStorageScope is installed on the thread keep
// their weights in a narrower storage dtype than they compute in, and widen them for each GEMM.
// Today: bf16 storage for fp32 compute (GemmMode::Bf16StoredF32: the weights rounded to bf16
// once, half the memory, fp32 activations and arithmetic). Installed around a model's loading
// (e.g. `--storage-dtype bf16`); layers built outside a scope store what they compute in.
// models::ModuleLoader applies diffusers' rules per layer: a layer whose module name matches
// one of its skip patterns stays as computed, and a narrowed layer's bias is rounded to the
// storage dtype too (diffusers casts every parameter of the layer).
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

// Whether diffusers' enable_layerwise_casting leaves the layer `module_name` (dotted, from the
// model's root) as computed: its default skip patterns, searched in the name as re.search does,
// "pos_embed", "patch_embed", "norm" anywhere, "^proj_in$" and "^proj_out$" whole (FLUX's and
// Qwen-Image's own patterns, "pos_embed" and "norm", are among them).
bool layerwise_casting_skips(std::string_view module_name);

// "fp32"/"f32" -> F32, "bf16" -> BF16; anything else (fp8 included, not supported yet) is refused
// with a message naming the value and the choices.
DType parse_weight_storage(std::string_view name);

}  // namespace paradiff::kernels
