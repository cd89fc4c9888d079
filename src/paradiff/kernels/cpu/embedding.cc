// CPU body of embedding.h: one row copy (through fp32) per id.
#include "paradiff/kernels/embedding.h"

#include <vector>

#include "paradiff/kernels/cpu/row_io.h"

namespace paradiff::kernels {

template <>
void impl::embedding<DeviceKind::CPU>(const Tensor& table, const Tensor& ids, Tensor& out) {
  const int64_t n = table.dim(0), c = table.dim(1), m = ids.dim(0);
  const int64_t* id = ids.data<int64_t>();
  for (int64_t r = 0; r < m; ++r)
    PARADIFF_CHECK(id[r] >= 0 && id[r] < n, "embedding: id ", id[r], " at ", r,
                   " is outside the table's ", n, " rows");
#pragma omp parallel if (m * c > (1 << 15))
  {
    std::vector<float> buf(static_cast<size_t>(c));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < m; ++r) {
      load_row(table.raw_data(), table.dtype(), id[r] * c, c, buf.data());
      store_row(buf.data(), out.raw_data(), out.dtype(), r * c, c);
    }
  }
}

}  // namespace paradiff::kernels
