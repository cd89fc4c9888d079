// CPU body of attention_merge.h: the stable sigmoid form of the log-sum-exp merge.
#include "paradiff/kernels/attention_merge.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace paradiff::kernels {
namespace {

// 1 / (1 + e^-x) without overflow for either sign of x.
float sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.0f + e);
}

}  // namespace

template <>
void impl::merge_attention<DeviceKind::CPU>(Tensor& out, Tensor& lse, const Tensor& out_b,
                                            const Tensor& lse_b) {
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
