#include "paradiff/kernels/embedding.h"

#include "paradiff/kernels/checks.h"

namespace paradiff::kernels {

void embedding(const Tensor& table, const Tensor& ids, Tensor& out) {
  expect_f32_or_bf16(table, "embedding table");
  expect_f32_or_bf16(out, "embedding output");
  PARADIFF_CHECK(table.ndim() == 2, "embedding table must be (N, C), got ", table.describe());
  PARADIFF_CHECK(ids.ndim() == 1 && ids.dtype() == DType::I64,
                 "embedding ids must be i64 (M), got ", ids.describe());
  out.expect_shape(Shape{ids.dim(0), table.dim(1)}, "embedding output");
  dispatch_device("embedding", common_device("embedding", table, ids, out),
                  [&]<DeviceKind D>() { impl::embedding<D>(table, ids, out); });
}

void timestep_embedding(const Tensor& t, Tensor& out) {
  PARADIFF_CHECK(t.ndim() == 1, "timestep must be (B), got ", t.describe());
  t.expect_dtype(DType::F32, "timestep");
  PARADIFF_CHECK(out.ndim() == 2 && out.dim(0) == t.dim(0) && out.dim(1) % 2 == 0,
                 "timestep embedding output must be (", t.dim(0), ", even C), got ",
                 out.describe());
  out.expect_dtype(DType::F32, "timestep embedding output");
  dispatch_device("timestep_embedding", common_device("timestep_embedding", t, out),
                  [&]<DeviceKind D>() { impl::timestep_embedding<D>(t, out); });
}

}  // namespace paradiff::kernels
