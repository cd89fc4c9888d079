#include "paradiff/models/flux/flux_pos_embed.h"

#include <numeric>

#include "paradiff/kernels/rope.h"

namespace paradiff::models::flux {

RotaryTables flux_rotary_tables(const Tensor& ids, const std::vector<int64_t>& axes_dims,
                                double theta) {
  const int64_t axes = static_cast<int64_t>(axes_dims.size());
  PARADIFF_CHECK(ids.ndim() == 2 && ids.dim(1) == axes, "position ids must be (S, ", axes,
                 ") for axes_dims_rope of ", axes, " axes, got ", ids.describe());
  const int64_t s = ids.dim(0);
  const int64_t d = std::accumulate(axes_dims.begin(), axes_dims.end(), int64_t{0});
  RotaryTables t{Tensor::empty({s, d}, DType::F32), Tensor::empty({s, d}, DType::F32)};
  kernels::rope_tables(ids.as(DType::F32), axes_dims, theta, t.cos, t.sin);
  return t;
}

}  // namespace paradiff::models::flux
