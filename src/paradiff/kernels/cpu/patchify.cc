// CPU bodies of patchify.h: index permutations, one output row per iteration.
#include "paradiff/kernels/patchify.h"

namespace paradiff::kernels {

template <>
void impl::patchify_2x2<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  const int64_t b = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  const float* in = x.data<float>();
  float* o = out.data<float>();
#pragma omp parallel for collapse(2) schedule(static) if (out.numel() > (1 << 16))
  for (int64_t n = 0; n < b; ++n)
    for (int64_t y = 0; y < h / 2; ++y)
      for (int64_t xx = 0; xx < w / 2; ++xx)
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t dy = 0; dy < 2; ++dy)
            for (int64_t dx = 0; dx < 2; ++dx)
              o[((n * (h / 2) + y) * (w / 2) + xx) * 4 * c + ch * 4 + dy * 2 + dx] =
                  in[((n * c + ch) * h + 2 * y + dy) * w + 2 * xx + dx];
}

template <>
void impl::unpatchify_2x2<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  const int64_t b = out.dim(0), c = out.dim(1), h = out.dim(2), w = out.dim(3);
  const float* in = x.data<float>();
  float* o = out.data<float>();
#pragma omp parallel for collapse(2) schedule(static) if (out.numel() > (1 << 16))
  for (int64_t n = 0; n < b; ++n)
    for (int64_t y = 0; y < h / 2; ++y)
      for (int64_t xx = 0; xx < w / 2; ++xx)
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t dy = 0; dy < 2; ++dy)
            for (int64_t dx = 0; dx < 2; ++dx)
              o[((n * c + ch) * h + 2 * y + dy) * w + 2 * xx + dx] =
                  in[((n * (h / 2) + y) * (w / 2) + xx) * 4 * c + ch * 4 + dy * 2 + dx];
}

template <>
void impl::grid_position_ids<DeviceKind::CPU>(int64_t h, int64_t w, Tensor& ids) {
  float* p = ids.data<float>();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      p[(y * w + x) * 3 + 0] = 0.0f;
      p[(y * w + x) * 3 + 1] = static_cast<float>(y);
      p[(y * w + x) * 3 + 2] = static_cast<float>(x);
    }
}

}  // namespace paradiff::kernels
