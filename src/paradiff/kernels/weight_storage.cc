#include "paradiff/kernels/weight_storage.h"

#include <string>

#include "paradiff/core/error.h"

namespace paradiff::kernels {
namespace {

thread_local DType current_storage = DType::F32;

}  // namespace

WeightStorageScope::WeightStorageScope(DType storage) : previous_(current_storage) {
  PARADIFF_CHECK(storage == DType::F32 || storage == DType::BF16,
                 "weight storage dtype must be fp32 or bf16, got ", dtype_name(storage));
  current_storage = storage;
}

WeightStorageScope::~WeightStorageScope() {
  current_storage = previous_;
}

DType weight_storage_dtype() {
  return current_storage;
}

bool layerwise_casting_skips(std::string_view module_name) {
  for (std::string_view part : {"pos_embed", "patch_embed", "norm"})
    if (module_name.find(part) != std::string_view::npos) return true;
  return module_name == "proj_in" || module_name == "proj_out";
}

DType parse_weight_storage(std::string_view name) {
  if (name == "fp32" || name == "f32") return DType::F32;
  if (name == "bf16") return DType::BF16;
  if (name == "fp8" || name == "fp8_e4m3" || name == "float8_e4m3fn")
    throw Error("storage dtype '" + std::string(name) +
                "' is not supported yet: weights can be stored in fp32 or bf16");
  throw Error("unknown storage dtype '" + std::string(name) + "': expected fp32 or bf16");
}

}  // namespace paradiff::kernels
