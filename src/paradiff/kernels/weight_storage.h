// Layerwise casting, as diffusers' `enable_layerwise_casting(storage_dtype, compute_dtype)`: the
// GEMM layers (Linear, Conv2d) built while a WeightStorageScope is installed on the thread keep
// their weights in a narrower storage dtype than they compute in, and widen them for each GEMM.
// Today: fp32 compute with bf16 storage (GemmMode::Bf16StoredF32: half the memory) or float8
// e4m3 storage (GemmMode::Fp8StoredF32, Linear only: a quarter), the weights rounded once,
// activations and arithmetic fp32; and bf16 compute with float8 e4m3 storage
// (GemmMode::Fp8StoredBf16, Linear only: half of bf16's memory; Fp8StoredF32 where bf16 is not
// native). bf16 storage with bf16 compute changes nothing. Installed around a model's loading
// (`--storage-dtype`); layers built outside a scope store what they compute in.
// models::ModuleLoader applies diffusers' rules per layer: a layer whose module name matches one of
// its skip patterns stays as computed, and a narrowed layer's bias is rounded to the storage dtype
// too (diffusers casts every parameter of the layer).
#pragma once

#include <string_view>

#include "paradiff/core/dtype.h"
#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

enum class WeightStorage {
  AsComputed,  // no narrowing
  Bf16,
  Fp8E4M3,  // torch.float8_e4m3fn
};

// "fp32" (as computed), "bf16", "fp8_e4m3".
std::string_view weight_storage_name(WeightStorage storage);

class WeightStorageScope {
 public:
  explicit WeightStorageScope(WeightStorage storage);
  ~WeightStorageScope();
  WeightStorageScope(const WeightStorageScope&) = delete;
  WeightStorageScope& operator=(const WeightStorageScope&) = delete;

 private:
  WeightStorage previous_;
};

// The innermost scope's storage on this thread; AsComputed without one.
WeightStorage weight_storage();

// Whether diffusers' enable_layerwise_casting leaves the layer `module_name` (dotted, from the
// model's root) as computed: its default skip patterns, searched in the name as re.search does,
// "pos_embed", "patch_embed", "norm" anywhere, "^proj_in$" and "^proj_out$" whole (FLUX's and
// Qwen-Image's own patterns, "pos_embed" and "norm", are among them).
bool layerwise_casting_skips(std::string_view module_name);

// An F32 or BF16 tensor's values rounded to `storage` and back, in its own dtype (bf16: to nearest
// even; fp8: as PyTorch converts to float8_e4m3fn, kernels/fp8_e4m3.h), on the OpenMP threads
// (kernels/narrowing.h); the tensor itself for AsComputed and for a BF16 tensor to Bf16.
Tensor round_to_storage(const Tensor& t, WeightStorage storage);

// "fp32"/"f32" -> AsComputed, "bf16", "fp8"/"fp8_e4m3"/"float8_e4m3fn" -> Fp8E4M3; anything else
// is refused with a message naming the value and the choices.
WeightStorage parse_weight_storage(std::string_view name);

// Whether `storage` narrows the GEMM weights of a model computed in `compute`: bf16 and fp8 for
// F32 compute, fp8 for BF16 compute (bf16 storage is what bf16 compute keeps anyway).
bool storage_narrows(WeightStorage storage, DType compute);

// Refuses (naming both) a compute dtype that no storage supports: only F32 and BF16 compute.
void check_weight_storage(WeightStorage storage, DType compute);

}  // namespace paradiff::kernels
