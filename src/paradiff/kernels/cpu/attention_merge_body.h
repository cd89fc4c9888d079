// Level body of attention_merge (isa_dispatch.h): the stable sigmoid form of the log-sum-exp
// merge, one (batch, token, head) row of d per iteration.

// 1 / (1 + e^-x) without overflow for either sign of x.
inline float merge_sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.0f + e);
}

void merge_attention_rows(float* o, float* l, const float* ob, const float* lb, int64_t rows,
                          int64_t d) {
  const float empty = -INFINITY;
#pragma omp parallel for schedule(static) if (rows * d > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float la = l[r], lbr = lb[r];
    float* orow = o + r * d;
    const float* brow = ob + r * d;
    // Empty sides first: -inf - -inf would be NaN below.
    if (lbr == empty) continue;  // b adds nothing (also when both are empty)
    if (la == empty) {
      for (int64_t i = 0; i < d; ++i) orow[i] = brow[i];
      l[r] = lbr;
      continue;
    }
    const float w = merge_sigmoid(lbr - la);
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) orow[i] -= w * (orow[i] - brow[i]);
    l[r] = (la < lbr ? lbr : la) + std::log1p(std::exp(-std::abs(la - lbr)));
  }
}
