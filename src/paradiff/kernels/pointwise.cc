#include "paradiff/kernels/pointwise.h"

#include <algorithm>
#include <cmath>

#include "paradiff/kernels/row_io.h"

namespace paradiff::kernels {

namespace {

constexpr int64_t kChunk = 4096;

void check_same_shape(const Tensor& x, const Tensor& out, const char* name) {
  expect_f32_or_bf16(x, name);
  expect_f32_or_bf16(out, name);
  PARADIFF_CHECK(x.shape() == out.shape(), name, ": output ", out.describe(),
                 " does not match input ", x.describe());
}

// Applies fn to chunks of the flattened tensors in fp32: fn(a, b, n) writes its result into a;
// b is the second operand's chunk or nullptr.
template <typename Fn>
void chunked(const Tensor& a, const Tensor* b, Tensor& out, Fn fn) {
  const int64_t n = a.numel();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    alignas(64) float buf_a[kChunk];
    alignas(64) float buf_b[kChunk];
    const int64_t begin = c * kChunk, len = std::min(kChunk, n - begin);
    load_row(a.raw_data(), a.dtype(), begin, len, buf_a);
    if (b != nullptr) load_row(b->raw_data(), b->dtype(), begin, len, buf_b);
    fn(buf_a, b != nullptr ? buf_b : nullptr, len);
    store_row(buf_a, out.raw_data(), out.dtype(), begin, len);
  }
}

}  // namespace

void gelu_erf(const Tensor& x, Tensor& out) {
  check_same_shape(x, out, "gelu_erf");
  chunked(x, nullptr, out, [](float* v, const float*, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
      v[i] = 0.5f * v[i] * (1.0f + std::erf(v[i] * 0.70710678118654752f));
  });
}

void quick_gelu(const Tensor& x, Tensor& out) {
  check_same_shape(x, out, "quick_gelu");
  chunked(x, nullptr, out, [](float* v, const float*, int64_t n) {
    for (int64_t i = 0; i < n; ++i) v[i] = v[i] / (1.0f + std::exp(-1.702f * v[i]));
  });
}

void relu(const Tensor& x, Tensor& out) {
  check_same_shape(x, out, "relu");
  chunked(x, nullptr, out, [](float* v, const float*, int64_t n) {
    for (int64_t i = 0; i < n; ++i) v[i] = v[i] > 0.0f ? v[i] : (v[i] == v[i] ? 0.0f : v[i]);
  });
}

void multiply(const Tensor& a, const Tensor& b, Tensor& out) {
  check_same_shape(a, out, "multiply");
  check_same_shape(b, out, "multiply");
  chunked(a, &b, out, [](float* v, const float* w, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) v[i] *= w[i];
  });
}

}  // namespace paradiff::kernels
