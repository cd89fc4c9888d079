// Level body of channels_last (isa_dispatch.h): batched tiled transposes into fp32.

constexpr int64_t kTransposeTile = 32;  // square tiles keep both sides of the transpose in cache

inline float element_as_float(float v) {
  return v;
}
inline float element_as_float(bf16 v) {
  const uint32_t u = static_cast<uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float element_as_float(f16 v) {
  return f16_to_float(v);
}  // out of line in core

// out[b][j][i] = in[b][i][j] for an (rows x cols) matrix per batch entry, in tiles.
template <typename T>
void transpose_tiles(const T* in, float* out, int64_t batch, int64_t rows, int64_t cols) {
  const int64_t row_tiles = (rows + kTransposeTile - 1) / kTransposeTile;
  const int64_t col_tiles = (cols + kTransposeTile - 1) / kTransposeTile;
#pragma omp parallel for collapse(3) schedule(static) if (batch * rows * cols > (1 << 15))
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t ti = 0; ti < row_tiles; ++ti) {
      for (int64_t tj = 0; tj < col_tiles; ++tj) {
        const T* src = in + b * rows * cols;
        float* dst = out + b * rows * cols;
        const int64_t i_end = rows < (ti + 1) * kTransposeTile ? rows : (ti + 1) * kTransposeTile;
        const int64_t j_end = cols < (tj + 1) * kTransposeTile ? cols : (tj + 1) * kTransposeTile;
        for (int64_t i = ti * kTransposeTile; i < i_end; ++i)
          for (int64_t j = tj * kTransposeTile; j < j_end; ++j)
            dst[j * rows + i] = element_as_float(src[i * cols + j]);
      }
    }
  }
}

// `in` of dtype F32, BF16 or F16 (the caller checks).
void transpose_batched(const void* in, DType dtype, float* out, int64_t batch, int64_t rows,
                       int64_t cols) {
  if (dtype == DType::BF16) {
    transpose_tiles(static_cast<const bf16*>(in), out, batch, rows, cols);
  } else if (dtype == DType::F16) {
    transpose_tiles(static_cast<const f16*>(in), out, batch, rows, cols);
  } else {
    transpose_tiles(static_cast<const float*>(in), out, batch, rows, cols);
  }
}
