// Vectorised transcendental functions for the elementwise kernels (AVX-512), with scalar
// equivalents used for tails and on machines without AVX-512.
#pragma once

#include <cmath>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace paradiff::kernels {

#if defined(__AVX512F__)
// exp(x) for 16 floats: range reduction x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial for
// e^r (relative error ~2e-7), then scaling by 2^n. Inputs below -87.3 give 0, above 88.7 inf.
inline __m512 exp512(__m512 x) {
  const __m512 max_x = _mm512_set1_ps(88.7228f), min_x = _mm512_set1_ps(-87.3365f);
  const __mmask16 underflow = _mm512_cmp_ps_mask(x, min_x, _CMP_LT_OQ);
  x = _mm512_min_ps(x, max_x);
  x = _mm512_max_ps(x, min_x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // r = x - n ln2 in two steps (Cody-Waite) to keep precision.
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512 result = _mm512_scalef_ps(p, n);
  return _mm512_mask_blend_ps(underflow, result, _mm512_setzero_ps());
}

// tanh(x) = 1 - 2 / (exp(2x) + 1): saturates cleanly to +-1 for large |x|.
inline __m512 tanh512(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 e = exp512(_mm512_add_ps(x, x));
  return _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));
}
#endif

inline float gelu_tanh_scalar(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}

inline float silu_scalar(float x) {
  return x / (1.0f + std::exp(-x));
}

}  // namespace paradiff::kernels
