// One vocabulary of fp32 vectors for the level bodies: VecF is 16 floats (zmm) where AVX-512 is
// compiled, 8 (ymm) at AVX2; PARADIFF_VEC_LANES is undefined where neither is (the scalar
// loops then do everything). With exp and tanh, and the scalar twins used for tails.
//
// A level body (isa_prelude.h): include it inside a level namespace. vexp gives the same bits
// at both widths (same polynomial and FMAs, a scaling by 2^n that rounds once), so the
// elementwise activations agree across levels.
#pragma once

#if !defined(PARADIFF_ISA_BODY)
#error \
    "vec_math.h is a level body: include kernels/cpu/isa_prelude.h, then this inside a level namespace"
#endif

#if defined(__AVX512F__)
#define PARADIFF_VEC_LANES 16
using VecF = __m512;
inline VecF vload(const float* p) {
  return _mm512_loadu_ps(p);
}
inline void vstore(float* p, VecF v) {
  _mm512_storeu_ps(p, v);
}
inline VecF vset(float x) {
  return _mm512_set1_ps(x);
}
inline VecF vadd(VecF a, VecF b) {
  return _mm512_add_ps(a, b);
}
inline VecF vsub(VecF a, VecF b) {
  return _mm512_sub_ps(a, b);
}
inline VecF vmul(VecF a, VecF b) {
  return _mm512_mul_ps(a, b);
}
inline VecF vdiv(VecF a, VecF b) {
  return _mm512_div_ps(a, b);
}
inline VecF vmin(VecF a, VecF b) {
  return _mm512_min_ps(a, b);
}
inline VecF vmax(VecF a, VecF b) {
  return _mm512_max_ps(a, b);
}
// a * b + c, rounded once.
inline VecF vfma(VecF a, VecF b, VecF c) {
  return _mm512_fmadd_ps(a, b, c);
}
// c - a * b, rounded once.
inline VecF vfnma(VecF a, VecF b, VecF c) {
  return _mm512_fnmadd_ps(a, b, c);
}
inline VecF vround(VecF v) {
  return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
// p * 2^n for integral n in [-126, 128], rounded once.
inline VecF vscale2(VecF p, VecF n) {
  return _mm512_scalef_ps(p, n);
}
// 0 where x < limit (ordered), v elsewhere (also where x is NaN).
inline VecF vzero_below(VecF x, VecF limit, VecF v) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, limit, _CMP_LT_OQ), v, _mm512_setzero_ps());
}
#elif defined(__AVX2__)
#define PARADIFF_VEC_LANES 8
using VecF = __m256;
inline VecF vload(const float* p) {
  return _mm256_loadu_ps(p);
}
inline void vstore(float* p, VecF v) {
  _mm256_storeu_ps(p, v);
}
inline VecF vset(float x) {
  return _mm256_set1_ps(x);
}
inline VecF vadd(VecF a, VecF b) {
  return _mm256_add_ps(a, b);
}
inline VecF vsub(VecF a, VecF b) {
  return _mm256_sub_ps(a, b);
}
inline VecF vmul(VecF a, VecF b) {
  return _mm256_mul_ps(a, b);
}
inline VecF vdiv(VecF a, VecF b) {
  return _mm256_div_ps(a, b);
}
inline VecF vmin(VecF a, VecF b) {
  return _mm256_min_ps(a, b);
}
inline VecF vmax(VecF a, VecF b) {
  return _mm256_max_ps(a, b);
}
inline VecF vfma(VecF a, VecF b, VecF c) {
  return _mm256_fmadd_ps(a, b, c);
}
inline VecF vfnma(VecF a, VecF b, VecF c) {
  return _mm256_fnmadd_ps(a, b, c);
}
inline VecF vround(VecF v) {
  return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
// p * 2^n as (p * 2^(n/2)) * 2^(n - n/2): both factors are normal for n in [-126, 128] and the
// first product is exact, so only the second rounds, as scalef does.
inline VecF vscale2(VecF p, VecF n) {
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i half = _mm256_srai_epi32(ni, 1);
  const __m256i rest = _mm256_sub_epi32(ni, half);
  const __m256i bias = _mm256_set1_epi32(127);
  const VecF f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, bias), 23));
  const VecF f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(rest, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
}
inline VecF vzero_below(VecF x, VecF limit, VecF v) {
  return _mm256_blendv_ps(v, _mm256_setzero_ps(), _mm256_cmp_ps(x, limit, _CMP_LT_OQ));
}
#endif

#if defined(PARADIFF_VEC_LANES)
constexpr int64_t kLanes = PARADIFF_VEC_LANES;

// Sum of the lanes, through memory (GCC 12's reduce intrinsics trip -Wuninitialized).
inline float vsum(VecF v) {
  alignas(64) float lanes[PARADIFF_VEC_LANES];
  vstore(lanes, v);
  float s = 0.0f;
  for (float x : lanes) s += x;
  return s;
}

// exp(x): range reduction x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial for e^r (relative
// error ~2e-7), then scaling by 2^n. Inputs below -87.3 give 0, above 88.7 inf.
inline VecF vexp(VecF x) {
  const VecF min_x = vset(-87.3365f);
  const VecF xc = vmax(vmin(x, vset(88.7228f)), min_x);
  const VecF n = vround(vmul(xc, vset(1.44269504088896341f)));
  // r = x - n ln2 in two steps (Cody-Waite) to keep precision.
  VecF r = vfnma(n, vset(0.693359375f), xc);
  r = vfnma(n, vset(-2.12194440e-4f), r);
  VecF p = vset(1.0f / 720.0f);
  p = vfma(p, r, vset(1.0f / 120.0f));
  p = vfma(p, r, vset(1.0f / 24.0f));
  p = vfma(p, r, vset(1.0f / 6.0f));
  p = vfma(p, r, vset(0.5f));
  p = vfma(p, r, vset(1.0f));
  p = vfma(p, r, vset(1.0f));
  return vzero_below(x, min_x, vscale2(p, n));
}

// 2^t for t <= 128: t below -125 gives 2^-125 (a normal float, never a denormal or 0; the
// softmax's sum is at least 1, so such terms vanish in it). Rounding to the nearest integer n,
// then 2^f for f = t - n in [-0.5, 0.5] by its interpolating polynomial at the 7 Chebyshev nodes
// (relative error ~1e-7 in float), scaled by 2^n. NaN stays NaN.
inline VecF vexp2(VecF t) {
  t = vmax(vset(-125.0f), t);
  const VecF n = vround(t);
  const VecF f = vsub(t, n);
  VecF p = vset(1.5461444854736328e-4f);
  p = vfma(p, f, vset(1.3400427997112274e-3f));
  p = vfma(p, f, vset(9.6180569380521774e-3f));
  p = vfma(p, f, vset(5.5503271520137787e-2f));
  p = vfma(p, f, vset(2.4022650718688965e-1f));
  p = vfma(p, f, vset(6.9314718246459961e-1f));
  p = vfma(p, f, vset(1.0f));
  return vscale2(p, n);
}

// tanh(x) = 1 - 2 / (exp(2x) + 1): saturates cleanly to +-1 for large |x|.
inline VecF vtanh(VecF x) {
  const VecF one = vset(1.0f);
  return vsub(one, vdiv(vset(2.0f), vadd(vexp(vadd(x, x)), one)));
}

// x / (1 + exp(-x)).
inline VecF vsilu(VecF x) {
  return vdiv(x, vadd(vset(1.0f), vexp(vsub(vset(0.0f), x))));
}
#endif

inline float gelu_tanh_scalar(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}

inline float silu_scalar(float x) {
  return x / (1.0f + std::exp(-x));
}
