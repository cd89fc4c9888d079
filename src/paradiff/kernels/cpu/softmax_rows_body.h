// Level body of the oneDNN attention's softmax (cpu/attention_onednn.cc). For each row of f32
// scores: its max m (one pass), then in a second pass e = exp(s - m) = 2^(s log2 e - m log2 e),
// their sum l, and e stored straight into P in the dtype of V. P stays unnormalised: the P V
// product is divided by l afterwards (scale_rows), rows x d values instead of rows x n. The vector
// part is in vec_math.h's vocabulary (zmm at avx512, ymm at avx2), scalar tails.
#include "paradiff/kernels/cpu/row_io.h"
#include "paradiff/kernels/cpu/vec_math.h"

// scores: rows x n f32 (row stride n), read only; p: rows x n of p_dtype (row stride n);
// inv_sum: rows floats, 1 / l; lse: rows floats, each row's natural-log log-sum-exp, or null.
void softmax_rows(const float* scores, int64_t rows, int64_t n, void* p, DType p_dtype,
                  float* inv_sum, float* lse) {
  constexpr float kLog2e = 1.44269504088896341f;
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = scores + r * n;
    float m = -INFINITY;
    int64_t i = 0;
#if defined(PARADIFF_VEC_LANES)
    VecF vm = vset(-INFINITY);
    for (; i + kLanes <= n; i += kLanes) vm = vmax(vm, vload(s + i));
    alignas(64) float lanes[PARADIFF_VEC_LANES];
    vstore(lanes, vm);
    for (float x : lanes) m = x > m ? x : m;
#endif
    for (; i < n; ++i) m = s[i] > m ? s[i] : m;
    // t = s log2(e) - m log2(e) in one FMA. The rounding of m log2(e) shifts every t of the row
    // alike: a common factor of P and l, gone after the division, and ~1e-7 in lse.
    const float shift = m * kLog2e;
    float l = 0.0f;
    i = 0;
#if defined(PARADIFF_VEC_LANES)
    const VecF vlog2e = vset(kLog2e), vneg_shift = vset(-shift);
    VecF vl = vset(0.0f);
    if (p_dtype == DType::BF16) {
      bf16* out = static_cast<bf16*>(p) + r * n;
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
    l = vsum(vl);
#endif
    for (; i < n; ++i) {
      const float e = std::exp2(std::fma(s[i], kLog2e, -shift));
      l += e;
      if (p_dtype == DType::BF16)
        static_cast<bf16*>(p)[r * n + i].bits = bf16_bits(e);
      else
        static_cast<float*>(p)[r * n + i] = e;
    }
    inv_sum[r] = 1.0f / l;
    if (lse != nullptr) lse[r] = m + std::log(l);
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
