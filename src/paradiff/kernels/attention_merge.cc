// The stable sigmoid form of the log-sum-exp merge; see attention_merge.h.
#include "paradiff/kernels/attention_merge.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace paradiff::kernels {
namespace {

void check_pair(const Tensor& out, const Tensor& lse, const char* out_name, const char* lse_name) {
  PARADIFF_CHECK(out.ndim() == 4 && out.dtype() == DType::F32, "merge_attention: ", out_name,
                 " must be f32 (B, S, H, D), got ", out.describe());
  const Shape want{out.dim(0), out.dim(1), out.dim(2)};
  PARADIFF_CHECK(lse.shape() == want && lse.dtype() == DType::F32, "merge_attention: ", lse_name,
                 " must be f32", want.to_string(), " (B, S, H) to match ", out_name, " ",
                 out.describe(), ", got ", lse.describe());
}

// 1 / (1 + e^-x) without overflow for either sign of x.
float sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.0f + e);
}

}  // namespace

void merge_attention(Tensor& out, Tensor& lse, const Tensor& out_b, const Tensor& lse_b) {
  check_pair(out, lse, "out", "lse");
  check_pair(out_b, lse_b, "out_b", "lse_b");
  PARADIFF_CHECK(out_b.shape() == out.shape(), "merge_attention: out_b must have the shape of out ",
                 out.shape().to_string(), ", got ", out_b.describe());
  const int64_t rows = lse.numel(), d = out.dim(3);
  float* o = out.data<float>();
  float* l = lse.data<float>();
  const float* ob = out_b.data<float>();
  const float* lb = lse_b.data<float>();
  constexpr float kEmpty = -std::numeric_limits<float>::infinity();
#pragma omp parallel for schedule(static) if (rows * d > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float la = l[r], lbr = lb[r];
    float* orow = o + r * d;
    const float* brow = ob + r * d;
    // Empty sides first: -inf - -inf would be NaN below.
    if (lbr == kEmpty) continue;  // b adds nothing (also when both are empty)
    if (la == kEmpty) {
      std::copy(brow, brow + d, orow);
      l[r] = lbr;
      continue;
    }
    const float w = sigmoid(lbr - la);
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) orow[i] -= w * (orow[i] - brow[i]);
    l[r] = std::max(la, lbr) + std::log1p(std::exp(-std::abs(la - lbr)));
  }
}

}  // namespace paradiff::kernels
