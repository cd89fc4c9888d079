#include "paradiff/kernels/cfg_norm_rescale.h"

#include <cmath>

namespace paradiff::kernels {

void cfg_norm_rescale(const Tensor& cond, const Tensor& uncond, float scale, Tensor& out) {
  cond.expect_dtype(DType::F32, "cfg_norm_rescale conditional prediction");
  uncond.expect_dtype(DType::F32, "cfg_norm_rescale unconditional prediction");
  out.expect_dtype(DType::F32, "cfg_norm_rescale output");
  PARADIFF_CHECK(cond.ndim() >= 1, "cfg_norm_rescale predictions must be (..., C), got ",
                 cond.describe());
  PARADIFF_CHECK(uncond.shape() == cond.shape() && out.shape() == cond.shape(),
                 "cfg_norm_rescale: the conditional ", cond.describe(), ", unconditional ",
                 uncond.describe(), " and output ", out.describe(), " must have one shape");
  PARADIFF_CHECK(std::isfinite(scale), "cfg_norm_rescale: scale must be finite, got ", scale);
  dispatch_device("cfg_norm_rescale", common_device("cfg_norm_rescale", cond, uncond, out),
                  [&]<DeviceKind D>() { impl::cfg_norm_rescale<D>(cond, uncond, scale, out); });
}

}  // namespace paradiff::kernels
