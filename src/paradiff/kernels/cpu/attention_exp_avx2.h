// A vectorised 2^t for the softmax of the AVX2 attention tiles: 8 lanes, the same degree-6
// polynomial as attention_exp_avx512.h (about 1e-7 relative error), the power of two built in the
// exponent bits (AVX2 has no vscalefps). Include only where __AVX2__ and __FMA__ are defined.
// Internal linkage: every file that includes it (attention_tile_avx2.cc, a test) keeps its own
// copy, compiled for its own level.
#pragma once

#include <immintrin.h>

namespace paradiff::kernels::attention_detail {
namespace {

// 2^t for t <= 128 (2^128 gives +inf, so does +inf). t below -125 gives 2^-125 instead of a
// smaller number or 0, so the result is always a normal float (no denormal slow paths); callers
// that need exact zeros (masked keys) mask them afterwards. NaN stays NaN.
inline __m256 exp2_approx(__m256 t) {
  // max(lo, t) and min(hi, t) return t when t is NaN (they return their second operand on NaN).
  t = _mm256_max_ps(_mm256_set1_ps(-125.0f), t);
  t = _mm256_min_ps(_mm256_set1_ps(128.0f), t);
  const __m256 n = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(t, n);  // in [-0.5, 0.5]
  // 2^f: the Chebyshev interpolant of attention_exp_avx512.h (max relative error 1.9e-8 with these
  // float coefficients in exact arithmetic).
  __m256 p = _mm256_set1_ps(1.5461444854736328e-4f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3400427997112274e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.6180569380521774e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5503271520137787e-2f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022650718688965e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9314718246459961e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
  // 2^n for n in [-125, 128]: the biased exponent n + 127 in [2, 255] (255: +inf). A NaN t makes
  // p NaN whatever the scale.
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

}  // namespace
}  // namespace paradiff::kernels::attention_detail
