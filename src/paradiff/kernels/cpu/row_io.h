// Loading and storing rows of f32 or bf16 elements as f32, for the elementwise kernels that
// compute in fp32 but may read or write bf16 (feeding a bf16 GEMM without an extra pass).
#pragma once

#include <cstdint>

#include "paradiff/core/tensor.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace paradiff::kernels {

inline void store_row(const float* src, void* dst, DType dtype, int64_t offset, int64_t n) {
  if (dtype == DType::F32) {
    float* d = static_cast<float*>(dst) + offset;
    if (d != src)
      for (int64_t i = 0; i < n; ++i) d[i] = src[i];
    return;
  }
  bf16* d = static_cast<bf16*>(dst) + offset;
  int64_t i = 0;
#if defined(__AVX512BF16__)
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i),
                        reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i))));
#endif
  for (; i < n; ++i) d[i] = float_to_bf16(src[i]);
}

inline void load_row(const void* src, DType dtype, int64_t offset, int64_t n, float* dst) {
  if (dtype == DType::F32) {
    const float* s = static_cast<const float*>(src) + offset;
    for (int64_t i = 0; i < n; ++i) dst[i] = s[i];
    return;
  }
  const bf16* s = static_cast<const bf16*>(src) + offset;
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(s[i]);
}

}  // namespace paradiff::kernels
