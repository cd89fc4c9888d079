// float8 e4m3 (kernels/fp8_e4m3.h) against a brute-force reference: every code's value from its
// fields, and the nearest code of random and edge floats, ties to even, PyTorch's overflow to NaN.
#include "paradiff/kernels/fp8_e4m3.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace paradiff::kernels {
namespace {

// Non-negative finite values in code order (0x00 ... 0x7e), from the format's definition.
std::vector<double> finite_values() {
  std::vector<double> v;
  for (int code = 0; code < 0x7f; ++code) {
    const int e = code >> 3, m = code & 7;
    v.push_back(e == 0 ? m * std::ldexp(1.0, -9) : (1 + m / 8.0) * std::ldexp(1.0, e - 7));
  }
  return v;
}

// The reference: nearest of `values`, ties to the even code; beyond 464 (where 480, not a value,
// would be nearest) NaN.
uint8_t reference_bits(float f, const std::vector<double>& values) {
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  const double a = std::fabs(static_cast<double>(f));
  if (std::isnan(f) || a > 464.0) return sign | 0x7f;
  int best = 0;
  for (int code = 1; code < static_cast<int>(values.size()); ++code) {
    const double d = std::fabs(values[code] - a), db = std::fabs(values[best] - a);
    if (d < db || (d == db && (code & 1) == 0)) best = code;
  }
  return sign | static_cast<uint8_t>(best);
}

TEST(Fp8E4M3, EveryCodeDecodesAndEncodesBack) {
  const auto values = finite_values();
  EXPECT_EQ(values.back(), 448.0);
  EXPECT_EQ(values[8], std::ldexp(1.0, -6));  // smallest normal
  EXPECT_EQ(values[1], std::ldexp(1.0, -9));  // smallest subnormal
  for (int code = 0; code < 256; ++code) {
    const auto bits = static_cast<uint8_t>(code);
    const float v = fp8_e4m3_value(bits);
    if ((code & 0x7f) == 0x7f) {
      EXPECT_TRUE(std::isnan(v)) << code;
      continue;
    }
    EXPECT_EQ(std::fabs(v), values[code & 0x7f]) << code;
    EXPECT_EQ(std::signbit(v), code >= 0x80) << code;
    EXPECT_EQ(fp8_e4m3_bits(v), bits) << code;
  }
}

TEST(Fp8E4M3, RoundsToNearestEvenAndOverflowsToNan) {
  const auto values = finite_values();
  std::vector<float> probes = {0.0f,
                               -0.0f,
                               448.0f,
                               456.0f,
                               464.0f,
                               464.001f,
                               470.0f,
                               480.0f,
                               1e30f,
                               std::numeric_limits<float>::infinity(),
                               std::ldexp(1.0f, -10),
                               std::ldexp(3.0f, -11),
                               std::ldexp(1.0f, -12),
                               std::numeric_limits<float>::quiet_NaN(),
                               1.0625f,
                               1.1875f,
                               0.3f};
  // Midpoints between neighbours (the ties) and their float neighbours.
  for (size_t i = 0; i + 1 < values.size(); ++i) {
    const auto mid = static_cast<float>((values[i] + values[i + 1]) / 2);
    probes.insert(probes.end(), {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)});
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> exponent(-14.0f, 10.0f);
  for (int i = 0; i < 20000; ++i) probes.push_back((i % 2 ? -1 : 1) * std::exp2(exponent(rng)));
  for (float f : probes) {
    const uint8_t want = reference_bits(f, values);
    EXPECT_EQ(fp8_e4m3_bits(f), want) << f;
    const float rounded = round_to_fp8_e4m3(f);
    if ((want & 0x7f) == 0x7f)
      EXPECT_TRUE(std::isnan(rounded)) << f;
    else
      EXPECT_EQ(rounded, fp8_e4m3_value(want)) << f;
  }
  EXPECT_EQ(fp8_e4m3_bits(464.0f), 0x7e);  // the tie goes to 448 (even), not to NaN
  EXPECT_EQ(fp8_e4m3_bits(-470.0f), 0xff);
}

}  // namespace
}  // namespace paradiff::kernels
