#include "paradiff/models/flux/flux_pos_embed.h"

#include <cmath>
#include <numeric>

namespace paradiff::models::flux {

RotaryTables flux_rotary_tables(const Tensor& ids, const std::vector<int64_t>& axes_dims,
                                double theta) {
  const int64_t axes = static_cast<int64_t>(axes_dims.size());
  PARADIFF_CHECK(ids.ndim() == 2 && ids.dim(1) == axes, "position ids must be (S, ", axes,
                 ") for axes_dims_rope of ", axes, " axes, got ", ids.describe());
  const int64_t s = ids.dim(0);
  const int64_t d = std::accumulate(axes_dims.begin(), axes_dims.end(), int64_t{0});
  const Tensor pos = ids.dtype() == DType::F32 ? ids : ids.to(DType::F32);
  RotaryTables t{Tensor::empty({s, d}, DType::F32), Tensor::empty({s, d}, DType::F32)};
  const float* p = pos.data<float>();
  float* c = t.cos.data<float>();
  float* sn = t.sin.data<float>();
  for (int64_t row = 0; row < s; ++row) {
    int64_t col = 0;
    for (int64_t a = 0; a < axes; ++a) {
      const int64_t dim = axes_dims[a];
      const double position = p[row * axes + a];
      for (int64_t k = 0; k < dim / 2; ++k) {
        // theta ** (2k / dim) in float64, then its reciprocal, as get_1d_rotary_pos_embed.
        const double freq = 1.0 / std::pow(theta, static_cast<double>(2 * k) / dim);
        const double angle = position * freq;
        const float cv = static_cast<float>(std::cos(angle));
        const float sv = static_cast<float>(std::sin(angle));
        c[row * d + col] = c[row * d + col + 1] = cv;
        sn[row * d + col] = sn[row * d + col + 1] = sv;
        col += 2;
      }
    }
  }
  return t;
}

}  // namespace paradiff::models::flux
