// CPU body of upsample_conv2d.h: scattering one phase's pixels into the output.
#include <cstring>

#include "paradiff/kernels/upsample_conv2d.h"

namespace paradiff::kernels {

template <>
void impl::interleave_phase<DeviceKind::CPU>(const Tensor& phase, int py, int px, Tensor& out) {
  const int64_t n = phase.dim(0), h = phase.dim(1), w = phase.dim(2), c = phase.dim(3);
  const size_t pixel = static_cast<size_t>(c) * sizeof(float);
  // Scatter: phase pixel (i, j) is output pixel (2i + py, 2j + px).
  const float* p = phase.data<float>();
  float* o = out.data<float>();
#pragma omp parallel for schedule(static) if (phase.numel() > (1 << 15))
  for (int64_t r = 0; r < n * h; ++r) {
    const int64_t b = r / h, i = r % h;
    float* row = o + ((b * 2 * h + 2 * i + py) * 2 * w + px) * c;
    const float* src = p + r * w * c;
    for (int64_t j = 0; j < w; ++j) std::memcpy(row + 2 * j * c, src + j * c, pixel);
  }
}

}  // namespace paradiff::kernels
