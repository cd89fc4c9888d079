// CPU body of cfg_norm_rescale.h: one row (token) per OpenMP iteration. The combination is
// written first (so `out` may alias an input: each element is read before it is overwritten),
// then scaled in place.
#include "paradiff/kernels/cfg_norm_rescale.h"

#include <cmath>

namespace paradiff::kernels {

namespace {
// Below this many elements one thread is faster than waking a team.
constexpr int64_t kParallelMin = 1 << 15;
}  // namespace

template <>
void impl::cfg_norm_rescale<DeviceKind::CPU>(const Tensor& cond, const Tensor& uncond, float scale,
                                             Tensor& out) {
  const int64_t c = cond.dim(-1);
  const int64_t rows = c == 0 ? 0 : cond.numel() / c;
  const float* pc = cond.data<float>();
  const float* pu = uncond.data<float>();
  float* po = out.data<float>();
#pragma omp parallel for schedule(static) if (cond.numel() > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xc = pc + r * c;
    const float* xu = pu + r * c;
    float* y = po + r * c;
    double cond_sq = 0.0, comb_sq = 0.0;
    for (int64_t i = 0; i < c; ++i) {
      const float vc = xc[i];
      // Each operation rounded to float, as torch evaluates the expression in fp32.
      const float diff = vc - xu[i];
      const float scaled = scale * diff;
      const float comb = xu[i] + scaled;
      cond_sq += static_cast<double>(vc) * vc;
      comb_sq += static_cast<double>(comb) * comb;
      y[i] = comb;
    }
    const float ratio =
        static_cast<float>(std::sqrt(cond_sq)) / static_cast<float>(std::sqrt(comb_sq));
    for (int64_t i = 0; i < c; ++i) y[i] *= ratio;
  }
}

}  // namespace paradiff::kernels
