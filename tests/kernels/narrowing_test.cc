// The bulk narrowings (kernels/narrowing.h: vector loops per instruction-set level, on the OpenMP
// threads) against the scalar functions they replace, bit for bit: every bf16 bit pattern, the
// e4m3 ties and their neighbours, and a million random float bit patterns (NaN, infinities and
// subnormals included). A NaN result only has to be a NaN (the bulk loops keep the input's sign).
#include "paradiff/kernels/narrowing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "paradiff/kernels/cpu/isa_dispatch.h"
#include "paradiff/kernels/fp8_e4m3.h"

namespace paradiff::kernels {
namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

// Equal bits, or both NaN.
bool same(float got, float want) {
  return std::isnan(want) ? std::isnan(got) : bits_of(got) == bits_of(want);
}

// Floats to check: the e4m3 midpoints and their neighbours, random bit patterns (every class of
// float) and random magnitudes around e4m3's range; more than one OpenMP chunk, with a tail.
std::vector<float> probe_floats() {
  std::vector<float> v;
  for (int code = 0; code < 0x7e; ++code) {
    const float mid = (fp8_e4m3_value(static_cast<uint8_t>(code)) +
                       fp8_e4m3_value(static_cast<uint8_t>(code + 1))) /
                      2;
    for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)})
      v.insert(v.end(), {f, -f});
  }
  v.insert(v.end(), {0.0f, -0.0f, 448.0f, 464.0f, -464.0f, 464.001f, 480.0f, INFINITY, -INFINITY,
                     NAN, -NAN, 0x1p-149f, -0x1p-149f, 0x1p-126f});
  std::mt19937 rng(11);
  std::uniform_int_distribution<uint32_t> any;
  std::uniform_real_distribution<float> exponent(-14.0f, 10.0f);
  for (int i = 0; i < (1 << 19) + 77; ++i) v.push_back(from_bits(any(rng)));
  for (int i = 0; i < (1 << 19); ++i) v.push_back((i % 2 ? -1 : 1) * std::exp2(exponent(rng)));
  return v;
}

TEST(Narrowing, Fp8FromF32IsTheScalarRoundingBitForBit) {
  const std::vector<float> in = probe_floats();
  const auto n = static_cast<int64_t>(in.size());
  std::vector<float> rounded(in.size());
  std::vector<uint8_t> codes(in.size());
  const int64_t calls =
      isa_dispatch_count(kernel_isa() == CpuIsa::Avx512Bf16 ? CpuIsa::Avx512 : kernel_isa());
  round_to_fp8_e4m3_values(in.data(), rounded.data(), n);
  fp8_e4m3_codes(in.data(), codes.data(), n);
  // The active level's loops ran (in chunks on the threads).
  EXPECT_GE(isa_dispatch_count(kernel_isa() == CpuIsa::Avx512Bf16 ? CpuIsa::Avx512 : kernel_isa()),
            calls + 2);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(codes[i], fp8_e4m3_bits(in[i])) << in[i] << " (bits " << bits_of(in[i]) << ")";
    ASSERT_TRUE(same(rounded[i], round_to_fp8_e4m3(in[i])))
        << in[i] << " -> " << rounded[i] << ", want " << round_to_fp8_e4m3(in[i]);
  }
  // In place.
  std::vector<float> inplace = in;
  round_to_fp8_e4m3_values(inplace.data(), inplace.data(), n);
  EXPECT_EQ(std::memcmp(inplace.data(), rounded.data(), inplace.size() * sizeof(float)), 0);
}

TEST(Narrowing, Fp8FromEveryBf16IsTheScalarRoundingBitForBit) {
  std::vector<bf16> in(1 << 16), rounded(1 << 16);
  std::vector<uint8_t> codes(1 << 16);
  for (uint32_t u = 0; u < (1u << 16); ++u) in[u] = bf16{static_cast<uint16_t>(u)};
  round_to_fp8_e4m3_values(in.data(), rounded.data(), 1 << 16);
  fp8_e4m3_codes(in.data(), codes.data(), 1 << 16);
  for (uint32_t u = 0; u < (1u << 16); ++u) {
    const float f = bf16_to_float(in[u]);
    ASSERT_EQ(codes[u], fp8_e4m3_bits(f)) << f;
    ASSERT_TRUE(same(bf16_to_float(rounded[u]), round_to_fp8_e4m3(f))) << f;
  }
}

TEST(Narrowing, Bf16IsFloatToBf16BitForBit) {
  const std::vector<float> in = probe_floats();
  std::vector<float> rounded(in.size());
  round_to_bf16_values(in.data(), rounded.data(), static_cast<int64_t>(in.size()));
  for (size_t i = 0; i < in.size(); ++i)
    ASSERT_EQ(bits_of(rounded[i]), bits_of(bf16_to_float(float_to_bf16(in[i])))) << in[i];
}

}  // namespace
}  // namespace paradiff::kernels
