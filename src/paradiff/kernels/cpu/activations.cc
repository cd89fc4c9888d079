// CPU bodies of activations.h: chunks of the flattened tensor in fp32, AVX-512 where compiled.
#include "paradiff/kernels/activations.h"

#include <algorithm>

#include "paradiff/kernels/cpu/row_io.h"
#include "paradiff/kernels/cpu/vec_math.h"

namespace paradiff::kernels {

namespace {

constexpr int64_t kChunk = 4096;

// Applies a vector function and its scalar twin over chunks of the flattened tensor.
template <typename Vec, typename Scalar>
void pointwise(const Tensor& x, Tensor& out, Vec vec_fn, Scalar scalar_fn) {
  const int64_t n = x.numel();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    alignas(64) float buf[kChunk];
    const int64_t begin = c * kChunk, len = std::min(kChunk, n - begin);
    load_row(x.raw_data(), x.dtype(), begin, len, buf);
    int64_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= len; i += 16) _mm512_store_ps(buf + i, vec_fn(_mm512_load_ps(buf + i)));
#endif
    for (; i < len; ++i) buf[i] = scalar_fn(buf[i]);
    store_row(buf, out.raw_data(), out.dtype(), begin, len);
  }
  (void)vec_fn;
}

}  // namespace

template <>
void impl::gelu_tanh<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  pointwise(
      x, out,
#if defined(__AVX512F__)
      [](__m512 v) {
        const __m512 k = _mm512_set1_ps(0.7978845608028654f);
        const __m512 c = _mm512_set1_ps(0.044715f);
        const __m512 half = _mm512_set1_ps(0.5f);
        const __m512 inner =
            _mm512_mul_ps(k, _mm512_fmadd_ps(_mm512_mul_ps(c, v), _mm512_mul_ps(v, v), v));
        const __m512 t = tanh512(inner);
        return _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(_mm512_set1_ps(1.0f), t));
      },
#else
      0,
#endif
      gelu_tanh_scalar);
}

template <>
void impl::silu<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  pointwise(
      x, out,
#if defined(__AVX512F__)
      [](__m512 v) {
        const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), v));
        return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
      },
#else
      0,
#endif
      silu_scalar);
}

}  // namespace paradiff::kernels
