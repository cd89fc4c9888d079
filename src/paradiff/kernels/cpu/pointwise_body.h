// Level body of pointwise (isa_dispatch.h): chunks of the flattened tensors, computed in fp32.
// Every operation has one signature: a and b (b may be null) of n elements, the operation's
// scalars in p, the result into out.
#include "paradiff/kernels/cpu/row_io.h"

constexpr int64_t kPointwiseChunk = 4096;

// Applies fn(a_chunk, b_chunk_or_null, len) to chunks in fp32; fn writes its result into a.
template <typename Fn>
void chunked(const void* a, DType a_dtype, const void* b, DType b_dtype, int64_t n, void* out,
             DType out_dtype, Fn fn) {
  const int64_t chunks = (n + kPointwiseChunk - 1) / kPointwiseChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    alignas(64) float buf_a[kPointwiseChunk];
    alignas(64) float buf_b[kPointwiseChunk];
    const int64_t begin = c * kPointwiseChunk;
    const int64_t len = n - begin < kPointwiseChunk ? n - begin : kPointwiseChunk;
    load_row(a, a_dtype, begin, len, buf_a);
    if (b != nullptr) load_row(b, b_dtype, begin, len, buf_b);
    fn(buf_a, b != nullptr ? buf_b : nullptr, len);
    store_row(buf_a, out, out_dtype, begin, len);
  }
}

inline float clamp_to(float v, float lo, float hi) {
  return v < lo ? lo : (hi < v ? hi : v);
}

void pointwise_gelu_erf(const void* a, DType a_dtype, const void* b, DType b_dtype, int64_t n,
                        const float* p, void* out, DType out_dtype) {
  chunked(a, a_dtype, b, b_dtype, n, out, out_dtype, [p](float* v, const float* w, int64_t len) {
    (void)p;
    (void)w;
    for (int64_t i = 0; i < len; ++i)
      v[i] = 0.5f * v[i] * (1.0f + std::erf(v[i] * 0.70710678118654752f));
  });
}

void pointwise_quick_gelu(const void* a, DType a_dtype, const void* b, DType b_dtype, int64_t n,
                          const float* p, void* out, DType out_dtype) {
  chunked(a, a_dtype, b, b_dtype, n, out, out_dtype, [p](float* v, const float* w, int64_t len) {
    (void)p;
    (void)w;
    for (int64_t i = 0; i < len; ++i) v[i] = v[i] / (1.0f + std::exp(-1.702f * v[i]));
  });
}

void pointwise_relu(const void* a, DType a_dtype, const void* b, DType b_dtype, int64_t n,
                    const float* p, void* out, DType out_dtype) {
  chunked(a, a_dtype, b, b_dtype, n, out, out_dtype, [p](float* v, const float* w, int64_t len) {
    (void)p;
    (void)w;
    for (int64_t i = 0; i < len; ++i) v[i] = v[i] > 0.0f ? v[i] : (v[i] == v[i] ? 0.0f : v[i]);
  });
}

void pointwise_multiply(const void* a, DType a_dtype, const void* b, DType b_dtype, int64_t n,
                        const float* p, void* out, DType out_dtype) {
  chunked(a, a_dtype, b, b_dtype, n, out, out_dtype, [p](float* v, const float* w, int64_t len) {
    (void)p;
    (void)w;
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) v[i] *= w[i];
  });
}

void pointwise_add(const void* a, DType a_dtype, const void* b, DType b_dtype, int64_t n,
                   const float* p, void* out, DType out_dtype) {
  chunked(a, a_dtype, b, b_dtype, n, out, out_dtype, [p](float* v, const float* w, int64_t len) {
    (void)p;
    (void)w;
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) v[i] += w[i];
  });
}

void pointwise_scale(const void* a, DType a_dtype, const void* b, DType b_dtype, int64_t n,
                     const float* p, void* out, DType out_dtype) {
  chunked(a, a_dtype, b, b_dtype, n, out, out_dtype, [p](float* v, const float* w, int64_t len) {
    (void)p;
    (void)w;
    const float s = p[0];
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) v[i] *= s;
  });
}

void pointwise_divide_scalar(const void* a, DType a_dtype, const void* b, DType b_dtype, int64_t n,
                             const float* p, void* out, DType out_dtype) {
  chunked(a, a_dtype, b, b_dtype, n, out, out_dtype, [p](float* v, const float* w, int64_t len) {
    (void)p;
    (void)w;
    const float s = p[0];
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) v[i] /= s;
  });
}

void pointwise_add_scalar(const void* a, DType a_dtype, const void* b, DType b_dtype, int64_t n,
                          const float* p, void* out, DType out_dtype) {
  chunked(a, a_dtype, b, b_dtype, n, out, out_dtype, [p](float* v, const float* w, int64_t len) {
    (void)p;
    (void)w;
    const float s = p[0];
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) v[i] += s;
  });
}

void pointwise_exp(const void* a, DType a_dtype, const void* b, DType b_dtype, int64_t n,
                   const float* p, void* out, DType out_dtype) {
  chunked(a, a_dtype, b, b_dtype, n, out, out_dtype, [p](float* v, const float* w, int64_t len) {
    (void)p;
    (void)w;
    for (int64_t i = 0; i < len; ++i) v[i] = std::exp(v[i]);
  });
}

void pointwise_clamp(const void* a, DType a_dtype, const void* b, DType b_dtype, int64_t n,
                     const float* p, void* out, DType out_dtype) {
  chunked(a, a_dtype, b, b_dtype, n, out, out_dtype, [p](float* v, const float* w, int64_t len) {
    (void)p;
    (void)w;
    const float lo = p[0], hi = p[1];
    for (int64_t i = 0; i < len; ++i) v[i] = clamp_to(v[i], lo, hi);
  });
}

void pointwise_scale_shift_clamp(const void* a, DType a_dtype, const void* b, DType b_dtype,
                                 int64_t n, const float* p, void* out, DType out_dtype) {
  chunked(a, a_dtype, b, b_dtype, n, out, out_dtype, [p](float* v, const float* w, int64_t len) {
    (void)p;
    (void)w;
    // p = {scale, shift, lo, hi}
    const float scale = p[0], shift = p[1], lo = p[2], hi = p[3];
    for (int64_t i = 0; i < len; ++i) {
      const float scaled = v[i] * scale;
      v[i] = clamp_to(scaled + shift, lo, hi);
    }
  });
}

bool all_finite_chunks(const void* x, DType dtype, int64_t n) {
  const int64_t chunks = (n + kPointwiseChunk - 1) / kPointwiseChunk;
  bool finite = true;
#pragma omp parallel for schedule(static) reduction(&& : finite) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    alignas(64) float buf[kPointwiseChunk];
    const int64_t begin = c * kPointwiseChunk;
    const int64_t len = n - begin < kPointwiseChunk ? n - begin : kPointwiseChunk;
    load_row(x, dtype, begin, len, buf);
    for (int64_t i = 0; i < len; ++i) finite = finite && std::isfinite(buf[i]);
  }
  return finite;
}
