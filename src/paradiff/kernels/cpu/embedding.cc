// CPU bodies of embedding.h: one row copy (through fp32) per id; timestep embeddings row by row.
#include "paradiff/kernels/embedding.h"

#include <cmath>
#include <vector>

#include "paradiff/kernels/cpu/isa_prelude.h"

// Cold (a lookup per prompt, one-off setup): one version, built for the build's baseline with the
// portable level's helpers.
namespace paradiff::kernels::isa_portable {
#include "paradiff/kernels/cpu/row_io.h"
}  // namespace paradiff::kernels::isa_portable

namespace paradiff::kernels {

using isa_portable::load_row;
using isa_portable::store_row;

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

template <>
void impl::timestep_embedding<DeviceKind::CPU>(const Tensor& t, Tensor& out) {
  const int64_t b = t.dim(0), channels = out.dim(1), half = channels / 2;
  // exponent_k = (k * -ln(10000)) / half, each step rounded to f32 as torch computes it.
  const float neg_log = static_cast<float>(-std::log(10000.0));
  for (int64_t i = 0; i < b; ++i) {
    const float ti = t.data<float>()[i];
    float* row = out.data<float>() + i * channels;
    for (int64_t k = 0; k < half; ++k) {
      const float exponent = (static_cast<float>(k) * neg_log) / static_cast<float>(half);
      const float arg = ti * std::exp(exponent);
      row[k] = std::cos(arg);  // flip_sin_to_cos: cosines first
      row[half + k] = std::sin(arg);
    }
  }
}

}  // namespace paradiff::kernels
