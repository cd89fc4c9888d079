// CPU bodies of channels_last.h: tiled transposes.
#include "paradiff/kernels/channels_last.h"

#include <algorithm>
#include <type_traits>

namespace paradiff::kernels {

namespace {
constexpr int64_t kTile = 32;  // square tiles keep both sides of the transpose in cache

// out[b][j][i] = in[b][i][j] for an (rows x cols) matrix per batch entry, in tiles.
template <typename T>
void transpose_batched(const T* in, float* out, int64_t batch, int64_t rows, int64_t cols) {
  const int64_t row_tiles = (rows + kTile - 1) / kTile, col_tiles = (cols + kTile - 1) / kTile;
#pragma omp parallel for collapse(3) schedule(static) if (batch * rows * cols > (1 << 15))
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t ti = 0; ti < row_tiles; ++ti) {
      for (int64_t tj = 0; tj < col_tiles; ++tj) {
        const T* src = in + b * rows * cols;
        float* dst = out + b * rows * cols;
        const int64_t i_end = std::min(rows, (ti + 1) * kTile);
        const int64_t j_end = std::min(cols, (tj + 1) * kTile);
        for (int64_t i = ti * kTile; i < i_end; ++i)
          for (int64_t j = tj * kTile; j < j_end; ++j)
            dst[j * rows + i] = static_cast<float>(to_double(src[i * cols + j]));
      }
    }
  }
}
}  // namespace

template <>
void impl::nchw_to_nhwc<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, int64_t>)
      transpose_batched(static_cast<const T*>(x.raw_data()), out.data<float>(), n, c, h * w);
  });
}

template <>
void impl::nhwc_to_nchw<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  transpose_batched(x.data<float>(), out.data<float>(), n, h * w, c);
}

}  // namespace paradiff::kernels
