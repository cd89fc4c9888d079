#include "paradiff/kernels/weight_storage.h"

#include <string>

#include "paradiff/core/error.h"
#include "paradiff/kernels/narrowing.h"

namespace paradiff::kernels {
namespace {

thread_local WeightStorage current_storage = WeightStorage::AsComputed;

}  // namespace

std::string_view weight_storage_name(WeightStorage storage) {
  switch (storage) {
    case WeightStorage::Bf16:
      return "bf16";
    case WeightStorage::Fp8E4M3:
      return "fp8_e4m3";
    case WeightStorage::AsComputed:
      break;
  }
  return "fp32";
}

WeightStorageScope::WeightStorageScope(WeightStorage storage) : previous_(current_storage) {
  current_storage = storage;
}

WeightStorageScope::~WeightStorageScope() {
  current_storage = previous_;
}

WeightStorage weight_storage() {
  return current_storage;
}

bool layerwise_casting_skips(std::string_view module_name) {
  for (std::string_view part : {"pos_embed", "patch_embed", "norm"})
    if (module_name.find(part) != std::string_view::npos) return true;
  return module_name == "proj_in" || module_name == "proj_out";
}

Tensor round_to_storage(const Tensor& t, WeightStorage storage) {
  if (storage == WeightStorage::AsComputed || !t.defined()) return t;
  PARADIFF_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16,
                 "weights rounded to a storage dtype must be f32 or bf16, got ", t.describe());
  if (t.dtype() == DType::BF16) {
    if (storage == WeightStorage::Bf16) return t;
    Tensor out = Tensor::empty(t.shape(), DType::BF16);
    round_to_fp8_e4m3_values(t.data<bf16>(), out.data<bf16>(), t.numel());
    return out;
  }
  Tensor out = Tensor::empty(t.shape(), DType::F32);
  if (storage == WeightStorage::Bf16)
    round_to_bf16_values(t.data<float>(), out.data<float>(), t.numel());
  else
    round_to_fp8_e4m3_values(t.data<float>(), out.data<float>(), t.numel());
  return out;
}

WeightStorage parse_weight_storage(std::string_view name) {
  if (name == "fp32" || name == "f32") return WeightStorage::AsComputed;
  if (name == "bf16") return WeightStorage::Bf16;
  if (name == "fp8" || name == "fp8_e4m3" || name == "float8_e4m3fn") return WeightStorage::Fp8E4M3;
  throw Error("unknown storage dtype '" + std::string(name) +
              "': expected fp32, bf16 or fp8 (float8 e4m3)");
}

bool storage_narrows(WeightStorage storage, DType compute) {
  return storage != WeightStorage::AsComputed &&
         (compute == DType::F32 || storage == WeightStorage::Fp8E4M3);
}

void check_weight_storage(WeightStorage storage, DType compute) {
  PARADIFF_CHECK(compute == DType::F32 || compute == DType::BF16,
                 "weight storage needs fp32 or bf16 compute, got ", dtype_name(compute),
                 " with --storage-dtype ", weight_storage_name(storage));
}

}  // namespace paradiff::kernels
