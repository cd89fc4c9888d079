// CPU bodies of pointwise.h: chunks of the flattened tensors, computed in fp32.
#include "paradiff/kernels/pointwise.h"

#include <algorithm>
#include <cmath>

#include "paradiff/kernels/cpu/row_io.h"

namespace paradiff::kernels {

namespace {

constexpr int64_t kChunk = 4096;

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

template <>
void impl::gelu_erf<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  chunked(x, nullptr, out, [](float* v, const float*, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
      v[i] = 0.5f * v[i] * (1.0f + std::erf(v[i] * 0.70710678118654752f));
  });
}

template <>
void impl::quick_gelu<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  chunked(x, nullptr, out, [](float* v, const float*, int64_t n) {
    for (int64_t i = 0; i < n; ++i) v[i] = v[i] / (1.0f + std::exp(-1.702f * v[i]));
  });
}

template <>
void impl::relu<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  chunked(x, nullptr, out, [](float* v, const float*, int64_t n) {
    for (int64_t i = 0; i < n; ++i) v[i] = v[i] > 0.0f ? v[i] : (v[i] == v[i] ? 0.0f : v[i]);
  });
}

template <>
void impl::multiply<DeviceKind::CPU>(const Tensor& a, const Tensor& b, Tensor& out) {
  chunked(a, &b, out, [](float* v, const float* w, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) v[i] *= w[i];
  });
}

template <>
void impl::add<DeviceKind::CPU>(const Tensor& a, const Tensor& b, Tensor& out) {
  chunked(a, &b, out, [](float* v, const float* w, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) v[i] += w[i];
  });
}

template <>
void impl::fill<DeviceKind::CPU>(Tensor& out, float value) {
  dispatch_f32_bf16("fill", out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    std::fill_n(out.data<T>(), out.numel(), from_float<T>(value));
  });
}

template <>
void impl::scale<DeviceKind::CPU>(const Tensor& x, float s, Tensor& out) {
  chunked(x, nullptr, out, [s](float* v, const float*, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) v[i] *= s;
  });
}

template <>
void impl::divide_scalar<DeviceKind::CPU>(const Tensor& x, float s, Tensor& out) {
  chunked(x, nullptr, out, [s](float* v, const float*, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) v[i] /= s;
  });
}

template <>
void impl::add_scalar<DeviceKind::CPU>(const Tensor& x, float s, Tensor& out) {
  chunked(x, nullptr, out, [s](float* v, const float*, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) v[i] += s;
  });
}

template <>
void impl::exp<DeviceKind::CPU>(const Tensor& x, Tensor& out) {
  chunked(x, nullptr, out, [](float* v, const float*, int64_t n) {
    for (int64_t i = 0; i < n; ++i) v[i] = std::exp(v[i]);
  });
}

template <>
void impl::clamp<DeviceKind::CPU>(const Tensor& x, float lo, float hi, Tensor& out) {
  chunked(x, nullptr, out, [lo, hi](float* v, const float*, int64_t n) {
    for (int64_t i = 0; i < n; ++i) v[i] = std::clamp(v[i], lo, hi);
  });
}

template <>
void impl::scale_shift_clamp<DeviceKind::CPU>(const Tensor& x, float scale, float shift, float lo,
                                              float hi, Tensor& out) {
  chunked(x, nullptr, out, [=](float* v, const float*, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      const float scaled = v[i] * scale;
      v[i] = std::clamp(scaled + shift, lo, hi);
    }
  });
}

template <>
bool impl::all_finite<DeviceKind::CPU>(const Tensor& x) {
  const int64_t n = x.numel();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  bool finite = true;
#pragma omp parallel for schedule(static) reduction(&& : finite) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    alignas(64) float buf[kChunk];
    const int64_t begin = c * kChunk, len = std::min(kChunk, n - begin);
    load_row(x.raw_data(), x.dtype(), begin, len, buf);
    for (int64_t i = 0; i < len; ++i) finite = finite && std::isfinite(buf[i]);
  }
  return finite;
}

}  // namespace paradiff::kernels
