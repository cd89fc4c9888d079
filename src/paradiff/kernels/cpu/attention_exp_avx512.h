// A vectorised 2^t for the softmax of the attention tile kernels: 16 lanes, about 1e-7 relative
// error (float rounding of a degree-6 polynomial whose own error is 2e-8), no table, no branch.
// Include only where __AVX512F__ is defined. Internal linkage: every file that includes it (the
// variant files of cmake/KernelIsa.cmake, a test) keeps its own copy, compiled for its own level.
#pragma once

#include <immintrin.h>

namespace paradiff::kernels::attention_detail {
namespace {

// 2^t for t <= 127 (the softmax uses t = s - max + a few). t below -125 gives 2^-125 instead of
// a smaller number or 0, so the result is always a normal float (no denormal slow paths); callers
// that need exact zeros (masked keys) mask them afterwards. NaN stays NaN.
inline __m512 exp2_approx(__m512 t) {
  // max(lo, t) returns t when t is NaN (max_ps returns its second operand on NaN).
  t = _mm512_max_ps(_mm512_set1_ps(-125.0f), t);
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, n);  // in [-0.5, 0.5]
  // 2^f interpolated at the 7 Chebyshev nodes of [-0.5, 0.5] (coefficients computed for this
  // file; max relative error 1.9e-8 with these float coefficients in exact arithmetic).
  __m512 p = _mm512_set1_ps(1.5461444854736328e-4f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3400427997112274e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6180569380521774e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5503271520137787e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650718688965e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718246459961e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

}  // namespace
}  // namespace paradiff::kernels::attention_detail
