// Loading and storing rows of f32 or bf16 elements as f32, for the elementwise kernels that
// compute in fp32 but may read or write bf16 (feeding a bf16 GEMM without an extra pass).
//
// A level body (isa_prelude.h): include it inside a level namespace, never at namespace
// paradiff::kernels, so that each level's copy has its own name. bf16 is rounded to nearest even
// with NaN kept quiet, bit for bit as core's float_to_bf16 (PyTorch's rounding) at every level:
// with AVX512_BF16 by vcvtneps2bf16, whose flush of subnormal inputs to zero is undone by taking
// the integer path for the (rare) vectors that hold one.
#pragma once

#if !defined(PARADIFF_ISA_BODY)
#error \
    "row_io.h is a level body: include kernels/cpu/isa_prelude.h, then this inside a level namespace"
#endif

// Bits of the bf16 nearest to f (ties to even); NaN stays NaN, made quiet.
inline uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_value(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

#if defined(__AVX512F__)
// 16 floats to 16 bf16 (as bf16_bits).
inline __m256i bf16_round_vec(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i abs = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
#if defined(__AVX512BF16__)
  const __mmask16 subnormal = _mm512_cmplt_epu32_mask(_mm512_sub_epi32(abs, _mm512_set1_epi32(1)),
                                                      _mm512_set1_epi32(0x007fffff));
  if (subnormal == 0) return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v));
#endif
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(abs, _mm512_set1_epi32(0x7f800000));
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x00400000)));
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}
constexpr int64_t kBf16RoundLanes = 16;
inline void store_bf16_vec(const float* src, bf16* dst) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), bf16_round_vec(_mm512_loadu_ps(src)));
}
#elif defined(__AVX2__)
// 8 floats to 8 bf16 (as bf16_bits).
inline __m128i bf16_round_vec(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i abs = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
  const __m256i nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f800000));
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
  r = _mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x00400000)), nan);
  r = _mm256_srli_epi32(r, 16);
  // packus works within 128-bit halves: [r0..r3 r0..r3 | r4..r7 r4..r7]; keep quadwords 0 and 2.
  const __m256i packed = _mm256_packus_epi32(r, r);
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}
constexpr int64_t kBf16RoundLanes = 8;
inline void store_bf16_vec(const float* src, bf16* dst) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), bf16_round_vec(_mm256_loadu_ps(src)));
}
#endif

inline void store_row(const float* src, void* dst, DType dtype, int64_t offset, int64_t n) {
  if (dtype == DType::F32) {
    // memcpy: a plain copy loop here stayed scalar (the compiler cannot rule out overlap).
    float* d = static_cast<float*>(dst) + offset;
    if (d != src) std::memcpy(d, src, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  bf16* d = static_cast<bf16*>(dst) + offset;
  int64_t i = 0;
#if defined(__AVX512F__) || defined(__AVX2__)
  for (; i + kBf16RoundLanes <= n; i += kBf16RoundLanes) store_bf16_vec(src + i, d + i);
#endif
  for (; i < n; ++i) d[i].bits = bf16_bits(src[i]);
}

// A vector of bf16 widened exactly to f32 (its 16 bits become the high half of the float): 16 at
// AVX-512, 8 at AVX2.
#if defined(__AVX512F__)
inline __m512 load_bf16_vec(const bf16* s) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
#elif defined(__AVX2__)
inline __m256 load_bf16_vec(const bf16* s) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
#endif

inline void load_row(const void* src, DType dtype, int64_t offset, int64_t n, float* dst) {
  if (dtype == DType::F32) {
    std::memcpy(dst, static_cast<const float*>(src) + offset,
                static_cast<size_t>(n) * sizeof(float));
    return;
  }
  const bf16* s = static_cast<const bf16*>(src) + offset;
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, load_bf16_vec(s + i));
#elif defined(__AVX2__)
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_bf16_vec(s + i));
#endif
  for (; i < n; ++i) dst[i] = bf16_value(s[i].bits);
}
