// The float8 e4m3 format of fp8 weights (PyTorch's torch.float8_e4m3fn, OCP's E4M3): a sign,
// 4 exponent bits (bias 7) and 3 mantissa bits; no infinities; S.1111.111 is NaN; the largest
// finite value is 448, the smallest normal 2^-6, subnormals down to 2^-9.
#pragma once

#include <array>
#include <cstdint>

namespace paradiff::kernels {

// The code nearest to f, ties to even, as PyTorch converts float32 to float8_e4m3fn: magnitudes
// that round beyond 448 (from 464 up, infinities included) and NaN give NaN (0x7f, with f's sign).
uint8_t fp8_e4m3_bits(float f);
// The value of a code (exact in float); NaN for 0x7f and 0xff.
float fp8_e4m3_value(uint8_t bits);
// fp8_e4m3_value of every code, indexed by the code: what widening loops read.
const std::array<float, 256>& fp8_e4m3_values();
// f rounded to the nearest e4m3 value (fp8_e4m3_value(fp8_e4m3_bits(f))).
float round_to_fp8_e4m3(float f);

}  // namespace paradiff::kernels
