// CPU body of upsample.h: row copies.
#include "paradiff/kernels/upsample.h"

#include <cstring>

namespace paradiff::kernels {

template <>
void impl::upsample_nearest2x<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  const float* src = x.data<float>();
  float* dst = out.data<float>();
  const size_t pixel = static_cast<size_t>(c) * sizeof(float);
  // One output row pair per input row: build the first row, copy it to the second.
#pragma omp parallel for schedule(static) if (out.numel() > (1 << 15))
  for (int64_t r = 0; r < n * h; ++r) {
    const float* in_row = src + r * w * c;
    float* out_row = dst + 2 * r * (2 * w) * c;
    for (int64_t j = 0; j < w; ++j) {
      std::memcpy(out_row + (2 * j) * c, in_row + j * c, pixel);
      std::memcpy(out_row + (2 * j + 1) * c, in_row + j * c, pixel);
    }
    std::memcpy(out_row + 2 * w * c, out_row, 2 * w * pixel);
  }
}

}  // namespace paradiff::kernels
