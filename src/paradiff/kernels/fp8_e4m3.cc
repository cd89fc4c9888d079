#include "paradiff/kernels/fp8_e4m3.h"

#include <cmath>
#include <limits>

namespace paradiff::kernels {

uint8_t fp8_e4m3_bits(float f) {
  const uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  const float a = std::fabs(f);
  constexpr uint8_t kNan = 0x7f;
  if (!(a < 480.0f)) return sign | kNan;  // NaN, infinities, and what rounds past 448
  int exponent = 0;
  std::frexp(
      a, &exponent);  // a = m 2^exponent, m in [0.5, 1): a in [2^(e), 2^(e+1)), e = exponent - 1
  const int e = a < 0x1p-6f ? -6 : exponent - 1;
  // Multiples of the quantum 2^(e-3) (three mantissa bits; subnormals share 2^-9); a / quantum is
  // exact, and nearbyint rounds it to even in the default rounding mode.
  const float k = std::nearbyint(std::ldexp(a, 3 - e));  // 0..16
  // Subnormal (e = -6): code k (k = 8 is the smallest normal, 0x08). Normal: exponent field e + 7,
  // mantissa k - 8; k = 16 carries into the next exponent by the same sum.
  const int code = a < 0x1p-6f ? static_cast<int>(k) : ((e + 7) << 3) + static_cast<int>(k) - 8;
  return sign | static_cast<uint8_t>(code >= kNan ? kNan : code);
}

float fp8_e4m3_value(uint8_t bits) {
  const int exponent = (bits >> 3) & 0xf, mantissa = bits & 0x7;
  const float sign = (bits & 0x80) ? -1.0f : 1.0f;
  if (exponent == 0xf && mantissa == 0x7) return std::numeric_limits<float>::quiet_NaN();
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -9);
  return sign * std::ldexp(1.0f + static_cast<float>(mantissa) / 8.0f, exponent - 7);
}

const std::array<float, 256>& fp8_e4m3_values() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int code = 0; code < 256; ++code) t[code] = fp8_e4m3_value(static_cast<uint8_t>(code));
    return t;
  }();
  return table;
}

float round_to_fp8_e4m3(float f) {
  return fp8_e4m3_value(fp8_e4m3_bits(f));
}

}  // namespace paradiff::kernels
