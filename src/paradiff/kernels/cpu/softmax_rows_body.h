// Level body of the oneDNN attention's softmax (cpu/attention_onednn.cc), online over chunks of
// keys as flash attention does it. Each row carries a shift (log2 domain) and a running sum l.
// For one chunk of raw f32 scores s (Q K^T without the scale): the largest c s of the row's chunk
// (c = scale log2(e); one pass), the shift moved to it when it passes the old one by more than
// kShiftSlack (always on the first chunk, whose shift is -inf), then in a second pass
// e = 2^(c s - shift), their sum, and e stored straight into P in the dtype of V. P stays
// unnormalised: the P V products of the chunks are summed into O (rescaled by alpha =
// 2^(old shift - new shift) where the shift moved) and divided by l at the end (scale_rows). The
// vector part is in vec_math.h's vocabulary (zmm at avx512, ymm at avx2), scalar tails.
#include "paradiff/kernels/cpu/row_io.h"
#include "paradiff/kernels/cpu/vec_math.h"

#if defined(__AVX512F__)
// 2^t for the bf16 probabilities: a degree-5 polynomial on [-0.5, 0.5] (Chebyshev nodes; 2.4e-7
// relative error with these float coefficients, a thousandth of bf16's rounding step) and the
// same clamp as vexp2, so the result is a normal float (>= 2^-125.5) or NaN: what
// vcvtneps2bf16 rounds like bf16_round_vec without its subnormal check.
inline __m512 softmax_exp2_bf16(__m512 t) {
  t = _mm512_max_ps(_mm512_set1_ps(-125.0f), t);
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, n);
  __m512 p = _mm512_set1_ps(1.3390863314270973e-3f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.676031768321991e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5503569543361664e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402210682630539e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471824645996e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0000001192092896f));
  return _mm512_scalef_ps(p, n);
}
#endif

// How far (log2 domain) a chunk's largest exponent may pass a row's shift before the shift is
// moved: e then stays below 2^8, harmless in f32 and bf16, and most chunks after the first leave
// the shift, so O needs no rescaling.
constexpr float kShiftSlack = 8.0f;

// scores: rows x n f32 (row stride n), read only; scale: the attention's scale (any sign); p: rows
// x n of p_dtype (row stride n); shift, l: each row's running state (-inf and 0 before the first
// chunk), updated; alpha: each row's factor for the O summed so far (0 on the first chunk, 1 where
// the shift stayed).
void softmax_chunk_rows(const float* scores, int64_t rows, int64_t n, float scale, void* p,
                        DType p_dtype, float* shift, float* l, float* alpha) {
  const float kLog2e = scale * 1.44269504088896341f;
  // m is the score whose scale * s is the largest: the max of s, or its min for a negative scale
  // (found as the max of -s; multiplying by -1 is exact).
  const float sign = scale < 0.0f ? -1.0f : 1.0f;
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = scores + r * n;
    float m = -INFINITY;
    int64_t i = 0;
#if defined(PARADIFF_VEC_LANES)
    // Four running maxima: one would wait on the latency of each max before the next.
    const VecF vsign = vset(sign);
    VecF vm = vset(-INFINITY), vm1 = vm, vm2 = vm, vm3 = vm;
    for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
      vm = vmax(vm, vmul(vload(s + i), vsign));
      vm1 = vmax(vm1, vmul(vload(s + i + kLanes), vsign));
      vm2 = vmax(vm2, vmul(vload(s + i + 2 * kLanes), vsign));
      vm3 = vmax(vm3, vmul(vload(s + i + 3 * kLanes), vsign));
    }
    for (; i + kLanes <= n; i += kLanes) vm = vmax(vm, vmul(vload(s + i), vsign));
    vm = vmax(vmax(vm, vm1), vmax(vm2, vm3));
    alignas(64) float lanes[PARADIFF_VEC_LANES];
    vstore(lanes, vm);
    for (float x : lanes) m = x > m ? x : m;
#endif
    for (; i < n; ++i) m = sign * s[i] > m ? sign * s[i] : m;
    m *= sign;
    // The row's shift moves to m c when that passes it by more than the slack (a NaN moves it
    // too, and so reaches the output). t = s c - shift in one FMA; the rounding of shift shifts
    // every t of the row alike: a common factor of P and l, gone after the division.
    const float top = m * kLog2e;
    float a = 1.0f;
    if (!(top <= shift[r] + kShiftSlack)) {
      a = std::exp2(shift[r] - top);  // 0 on the first chunk (shift = -inf)
      shift[r] = top;
    }
    alpha[r] = a;
    const float sh = shift[r];
    float sum = 0.0f;
    i = 0;
#if defined(PARADIFF_VEC_LANES)
    const VecF vlog2e = vset(kLog2e), vneg_shift = vset(-sh);
    VecF vl = vset(0.0f);
    if (p_dtype == DType::BF16) {
      bf16* out = static_cast<bf16*>(p) + r * n;
#if defined(__AVX512BF16__)
      // Two vectors a step, two sums, one conversion of both into 32 bf16.
      VecF vl1 = vset(0.0f);
      for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
        const VecF e0 = softmax_exp2_bf16(vfma(vload(s + i), vlog2e, vneg_shift));
        const VecF e1 = softmax_exp2_bf16(vfma(vload(s + i + kLanes), vlog2e, vneg_shift));
        vl = vadd(vl, e0);
        vl1 = vadd(vl1, e1);
        const __m512bh packed = _mm512_cvtne2ps_pbh(e1, e0);
        _mm512_storeu_si512(out + i, reinterpret_cast<const __m512i&>(packed));
      }
      for (; i + kLanes <= n; i += kLanes) {
        const VecF e = softmax_exp2_bf16(vfma(vload(s + i), vlog2e, vneg_shift));
        vl = vadd(vl, e);
        const __m256bh packed = _mm512_cvtneps_pbh(e);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                            reinterpret_cast<const __m256i&>(packed));
      }
      vl = vadd(vl, vl1);
#endif
      for (; i + kLanes <= n; i += kLanes) {
        const VecF e = vexp2(vfma(vload(s + i), vlog2e, vneg_shift));
        vl = vadd(vl, e);
#if defined(__AVX512F__)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), bf16_round_vec(e));
#else
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), bf16_round_vec(e));
#endif
      }
    } else {
      float* out = static_cast<float*>(p) + r * n;
      for (; i + kLanes <= n; i += kLanes) {
        const VecF e = vexp2(vfma(vload(s + i), vlog2e, vneg_shift));
        vl = vadd(vl, e);
        vstore(out + i, e);
      }
    }
    sum = vsum(vl);
#endif
    for (; i < n; ++i) {
      const float e = std::exp2(std::fma(s[i], kLog2e, -sh));
      sum += e;
      if (p_dtype == DType::BF16)
        static_cast<bf16*>(p)[r * n + i].bits = bf16_bits(e);
      else
        static_cast<float*>(p)[r * n + i] = e;
    }
    l[r] = l[r] * a + sum;
  }
}

// Row j of o (rows x d f32, row stride d), times scale[j], stored at row j * dst_stride of dst
// (dtype f32 or bf16, strides in elements).
void scale_rows(float* o, int64_t rows, int64_t d, const float* scale, void* dst, DType dtype,
                int64_t dst_stride) {
  for (int64_t j = 0; j < rows; ++j) {
    float* row = o + j * d;
    int64_t i = 0;
#if defined(PARADIFF_VEC_LANES)
    const VecF vs = vset(scale[j]);
    for (; i + kLanes <= d; i += kLanes) vstore(row + i, vmul(vload(row + i), vs));
#endif
    for (; i < d; ++i) row[i] *= scale[j];
    store_row(row, dst, dtype, j * dst_stride, d);
  }
}
