// How a GEMM-shaped layer (Linear, Conv2d) holds its weights and which arithmetic it runs, for a
// requested compute dtype on the active CPU (core/cpu_isa.h). With native bf16 (AVX512_BF16,
// AMX) a bf16 layer multiplies bf16 operands; without it the weights are still stored in bf16
// (half the memory of fp32) and widened to fp32 right before an fp32 GEMM, which is faster than
// oneDNN's emulated bf16 there and the only bf16 GEMM oneDNN has below AVX-512.
#pragma once

#include <string_view>

#include "paradiff/core/dtype.h"

namespace paradiff::kernels {

enum class GemmMode {
  F32,            // fp32 weights, fp32 arithmetic
  Bf16,           // bf16 weights and operands, fp32 accumulation (native bf16 dot products)
  Bf16StoredF32,  // bf16 weights widened per call; fp32 operands and arithmetic
  Fp8StoredF32,  // float8 e4m3 weights widened per call; fp32 operands and arithmetic (Linear only)
  Fp8StoredBf16,  // float8 e4m3 weights widened to bf16 per call; bf16 operands, fp32 accumulation
                  // (native bf16 dot products; Linear only)
};

// "f32", "bf16", "bf16 stored, f32 computed", "fp8 e4m3 stored, f32 computed",
// "fp8 e4m3 stored, bf16 computed".
std::string_view gemm_mode_name(GemmMode mode);

// The mode for a layer asked to compute in `compute` (F32 or BF16) at the active level, and with
// the storage of the thread's WeightStorageScope (kernels/weight_storage.h): F32 compute with
// bf16 storage is Bf16StoredF32, with fp8 storage Fp8StoredF32. BF16 compute with fp8 storage is
// Fp8StoredBf16 where bf16 is native, else Fp8StoredF32 (as bf16 compute there is Bf16StoredF32:
// the same exact products of bf16 activations and e4m3 weights, fp32 arithmetic).
GemmMode gemm_mode_for(DType compute);

// The dtype the GEMM's activations are in: BF16 for Bf16 and Fp8StoredBf16, F32 otherwise.
DType gemm_operand_dtype(GemmMode mode);

// The dtype a model's activations take between its layers (GEMM and attention inputs, norm and
// modulation outputs) when it computes in `compute` (F32 or BF16) at the active level: BF16 only
// where bf16 is native. Elsewhere a bf16 model's GEMMs compute in fp32 from bf16-stored weights
// (Bf16StoredF32, Fp8StoredF32), so its activations stay fp32: no rounding to bf16 that the GEMM
// and attention would widen back, and the forward is fp32 arithmetic on bf16-rounded weights.
DType activation_dtype_for(DType compute);

}  // namespace paradiff::kernels
