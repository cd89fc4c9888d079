// Body of kernels/narrowing.h, compiled once per instruction-set level (cmake/KernelIsa.cmake):
// the roundings of kernels/fp8_e4m3.h and of float_to_bf16 written on the values' bits without
// branches, so that the compiler vectorises each loop for the level. Bit for bit the scalar
// functions (tests/kernels/narrowing_test.cc), except that a NaN result keeps the input's sign.

// Float bits and back (memcpy: no aliasing, one move).
static inline uint32_t narrowing_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

static inline float narrowing_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// The e4m3 code of |f| (0 ... 0x7f, 0x7f for NaN and what rounds past 448), from a = |f|'s bits.
static inline uint32_t narrowing_e4m3_magnitude(uint32_t a) {
  // Below 2^-6, e4m3 has the multiples k 2^-9 (k = 0 ... 8, 8 being the smallest normal): adding
  // 2^14, whose float ulp is 2^-9, rounds |f| to one, to even, and leaves k in the low bits.
  const uint32_t small = narrowing_bits(narrowing_float(a) + 16384.0f) - 0x46800000u;
  // From 2^-6 up: the float's exponent and top three mantissa bits, rounded to even on the 20
  // dropped bits (a carry moves into the exponent), rebiased from 127 to 7 (120 << 3 = 960).
  const uint32_t normal = ((a + 0x7ffffu + ((a >> 20) & 1u)) >> 20) - 960u;
  const uint32_t code = a < 0x3c800000u ? small : normal;
  return code < 0x7fu ? code : 0x7fu;  // also infinities and NaN: their `normal` is > 0x7f
}

// The value of code (0 ... 0x7e) as float bits; 0x7f gives a quiet NaN. Integer operations only
// (the compiler if-converts those, not floating ones that might trap).
static inline uint32_t narrowing_e4m3_value_bits(uint32_t code) {
  // Below 8: k 2^-9 = 2^(p-9) (k / 2^p), p = floor(log2 k): exponent field 118 + p, the bits of k
  // below its leading one as the mantissa's top.
  const uint32_t p = static_cast<uint32_t>(code >= 2u) + static_cast<uint32_t>(code >= 4u);
  const uint32_t small = code == 0u ? 0u : ((118u + p) << 23) | ((code << (23u - p)) & 0x007fffffu);
  const uint32_t normal = (code + 960u) << 20;
  const uint32_t value = code < 8u ? small : normal;
  return code == 0x7fu ? 0x7fc00000u : value;
}

static inline uint32_t narrowing_e4m3_rounded(uint32_t u) {
  return (u & 0x80000000u) | narrowing_e4m3_value_bits(narrowing_e4m3_magnitude(u & 0x7fffffffu));
}

// float_to_bf16 (round to nearest even; NaN kept quiet) as the float bits of the result.
static inline uint32_t narrowing_bf16_rounded(uint32_t u) {
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  const uint32_t nan = (u | 0x00400000u) & 0xffff0000u;
  return (u & 0x7fffffffu) > 0x7f800000u ? nan : rounded;
}

void round_fp8_e4m3_f32(const float* in, float* out, int64_t count) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i)
    out[i] = narrowing_float(narrowing_e4m3_rounded(narrowing_bits(in[i])));
}

void round_fp8_e4m3_bf16(const uint16_t* in, uint16_t* out, int64_t count) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i)
    out[i] =
        static_cast<uint16_t>(narrowing_e4m3_rounded(static_cast<uint32_t>(in[i]) << 16) >> 16);
}

void fp8_e4m3_codes_f32(const float* in, uint8_t* out, int64_t count) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) {
    const uint32_t u = narrowing_bits(in[i]);
    out[i] = static_cast<uint8_t>(((u >> 24) & 0x80u) | narrowing_e4m3_magnitude(u & 0x7fffffffu));
  }
}

void fp8_e4m3_codes_bf16(const uint16_t* in, uint8_t* out, int64_t count) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) {
    const uint32_t u = static_cast<uint32_t>(in[i]) << 16;
    out[i] = static_cast<uint8_t>(((u >> 24) & 0x80u) | narrowing_e4m3_magnitude(u & 0x7fffffffu));
  }
}

void round_bf16_f32(const float* in, float* out, int64_t count) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i)
    out[i] = narrowing_float(narrowing_bf16_rounded(narrowing_bits(in[i])));
}
