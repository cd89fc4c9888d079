// Level body of the oneDNN attention's softmax (cpu/attention_onednn.cc): rows of f32 scores to
// normalised probabilities in the dtype of V, with each row's natural-log log-sum-exp. The vector
// part is in vec_math.h's vocabulary (zmm at avx512, ymm at avx2), scalar tails.
#include "paradiff/kernels/cpu/row_io.h"
#include "paradiff/kernels/cpu/vec_math.h"

// scores: rows x n f32 (row stride n), overwritten; p: rows x n of p_dtype (row stride n);
// lse: rows floats, or null.
void softmax_rows(float* scores, int64_t rows, int64_t n, void* p, DType p_dtype, float* lse) {
  for (int64_t r = 0; r < rows; ++r) {
    float* s = scores + r * n;
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
    float l = 0.0f;
    i = 0;
#if defined(PARADIFF_VEC_LANES)
    const VecF vmax_row = vset(m);
    VecF vl = vset(0.0f);
    for (; i + kLanes <= n; i += kLanes) {
      const VecF e = vexp(vsub(vload(s + i), vmax_row));
      vstore(s + i, e);
      vl = vadd(vl, e);
    }
    l = vsum(vl);
#endif
    for (; i < n; ++i) {
      s[i] = std::exp(s[i] - m);
      l += s[i];
    }
    const float inv = 1.0f / l;
    i = 0;
#if defined(PARADIFF_VEC_LANES)
    const VecF vinv = vset(inv);
    for (; i + kLanes <= n; i += kLanes) vstore(s + i, vmul(vload(s + i), vinv));
#endif
    for (; i < n; ++i) s[i] *= inv;
    store_row(s, p, p_dtype, r * n, n);
    if (lse != nullptr) lse[r] = m + std::log(l);
  }
}
