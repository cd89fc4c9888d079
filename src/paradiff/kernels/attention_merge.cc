#include "paradiff/kernels/attention_merge.h"

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
}  // namespace

void merge_attention(Tensor& out, Tensor& lse, const Tensor& out_b, const Tensor& lse_b) {
  check_pair(out, lse, "out", "lse");
  check_pair(out_b, lse_b, "out_b", "lse_b");
  PARADIFF_CHECK(out_b.shape() == out.shape(), "merge_attention: out_b must have the shape of out ",
                 out.shape().to_string(), ", got ", out_b.describe());
  dispatch_device("merge_attention", common_device("merge_attention", out, lse, out_b, lse_b),
                  [&]<DeviceKind D>() { impl::merge_attention<D>(out, lse, out_b, lse_b); });
}

}  // namespace paradiff::kernels
