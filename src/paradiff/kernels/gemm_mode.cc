#include "paradiff/kernels/gemm_mode.h"

#include "paradiff/core/cpu_isa.h"
#include "paradiff/core/error.h"
#include "paradiff/kernels/weight_storage.h"

namespace paradiff::kernels {

std::string_view gemm_mode_name(GemmMode mode) {
  switch (mode) {
    case GemmMode::F32:
      return "f32";
    case GemmMode::Bf16:
      return "bf16";
    case GemmMode::Bf16StoredF32:
      return "bf16 stored, f32 computed";
    case GemmMode::Fp8StoredF32:
      return "fp8 e4m3 stored, f32 computed";
    case GemmMode::Fp8StoredBf16:
      break;
  }
  return "fp8 e4m3 stored, bf16 computed";
}

GemmMode gemm_mode_for(DType compute) {
  PARADIFF_CHECK(compute == DType::F32 || compute == DType::BF16,
                 "compute dtype must be f32 or bf16, got ", dtype_name(compute));
  if (compute == DType::F32) {
    switch (weight_storage()) {
      case WeightStorage::Bf16:
        return GemmMode::Bf16StoredF32;
      case WeightStorage::Fp8E4M3:
        return GemmMode::Fp8StoredF32;
      case WeightStorage::AsComputed:
        break;
    }
    return GemmMode::F32;
  }
  if (weight_storage() == WeightStorage::Fp8E4M3)
    return native_bf16() ? GemmMode::Fp8StoredBf16 : GemmMode::Fp8StoredF32;
  return native_bf16() ? GemmMode::Bf16 : GemmMode::Bf16StoredF32;
}

DType gemm_operand_dtype(GemmMode mode) {
  return mode == GemmMode::Bf16 || mode == GemmMode::Fp8StoredBf16 ? DType::BF16 : DType::F32;
}

DType activation_dtype_for(DType compute) {
  PARADIFF_CHECK(compute == DType::F32 || compute == DType::BF16,
                 "compute dtype must be f32 or bf16, got ", dtype_name(compute));
  return compute == DType::BF16 && native_bf16() ? DType::BF16 : DType::F32;
}

}  // namespace paradiff::kernels
