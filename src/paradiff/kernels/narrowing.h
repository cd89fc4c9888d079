// Narrowing weights to a storage dtype (kernels/weight_storage.h) in bulk: the roundings of
// kernels/fp8_e4m3.h and float_to_bf16 (core/dtype.h) over arrays, on the OpenMP threads with the
// active level's vector loops (cpu/narrowing_body.h). Bit for bit the scalar functions, except
// that a NaN result keeps the input's sign. Host memory.
#pragma once

#include <cstdint>

#include "paradiff/core/dtype.h"

namespace paradiff::kernels {

// out[i] = round_to_fp8_e4m3(in[i]); in and out may be the same array.
void round_to_fp8_e4m3_values(const float* in, float* out, int64_t count);
// The same for bf16 values (every e4m3 value is a bf16 value: the result is exact in bf16).
void round_to_fp8_e4m3_values(const bf16* in, bf16* out, int64_t count);
// out[i] = fp8_e4m3_bits(in[i]).
void fp8_e4m3_codes(const float* in, uint8_t* out, int64_t count);
void fp8_e4m3_codes(const bf16* in, uint8_t* out, int64_t count);
// out[i] = float(float_to_bf16(in[i])); in and out may be the same array.
void round_to_bf16_values(const float* in, float* out, int64_t count);

}  // namespace paradiff::kernels
