#include "paradiff/core/fma_loops.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace paradiff {

// The sums go through memory: GCC 12's reduce intrinsics trip -Wuninitialized.

__attribute__((noinline)) float scalar_fma_loop(int64_t iters) {
  float acc[kFmaLoopChainsScalar];
  for (int i = 0; i < kFmaLoopChainsScalar; ++i) acc[i] = 0.001f * static_cast<float>(i);
  for (int64_t it = 0; it < iters; ++it)
    for (float& a : acc) a = a * 0.999f + 0.0001f;
  float sum = 0.0f;
  for (float a : acc) sum += a;
  return sum;
}

#if defined(__x86_64__)

__attribute__((noinline, target("avx2,fma"))) float avx2_fma_loop(int64_t iters) {
  __m256 acc[kFmaLoopChainsAvx2];
  for (int i = 0; i < kFmaLoopChainsAvx2; ++i)
    acc[i] = _mm256_set1_ps(0.001f * static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.0001f);
  for (int64_t it = 0; it < iters; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < kFmaLoopChainsAvx2; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  alignas(32) float lanes[8];
  float sum = 0.0f;
  for (int i = 0; i < kFmaLoopChainsAvx2; ++i) {
    _mm256_store_ps(lanes, acc[i]);
    for (float x : lanes) sum += x;
  }
  return sum;
}

namespace {

// The two zmm loops differ only in their step: one instruction per accumulator.
template <typename Step>
__attribute__((always_inline, target("avx512f"))) inline float zmm_loop(int64_t iters, Step step) {
  __m512 acc[kFmaLoopChains];
  for (int i = 0; i < kFmaLoopChains; ++i) acc[i] = _mm512_set1_ps(0.001f * static_cast<float>(i));
  for (int64_t it = 0; it < iters; ++it)
#pragma GCC unroll 24
    for (int i = 0; i < kFmaLoopChains; ++i) acc[i] = step(acc[i]);
  alignas(64) float lanes[16];
  float sum = 0.0f;
  for (int i = 0; i < kFmaLoopChains; ++i) {
    _mm512_store_ps(lanes, acc[i]);
    for (float x : lanes) sum += x;
  }
  return sum;
}

}  // namespace

__attribute__((noinline, target("avx512f"))) float avx512_fma_loop(int64_t iters) {
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.0001f);
  return zmm_loop(
      iters, [=](__m512 x) __attribute__((always_inline, target("avx512f"))) {
        return _mm512_fmadd_ps(x, a, b);
      });
}

__attribute__((noinline, target("avx512f,avx512bf16"))) float avx512_bf16_dot_loop(int64_t iters) {
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.01f), _mm512_set1_ps(0.02f));
  return zmm_loop(
      iters, [=](__m512 x) __attribute__((always_inline, target("avx512f,avx512bf16"))) {
        return _mm512_dpbf16_ps(x, a, a);
      });
}

#endif  // __x86_64__

}  // namespace paradiff
