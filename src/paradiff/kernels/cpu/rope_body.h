// Level body of rope (isa_dispatch.h): one (batch, token) per OpenMP iteration, in fp32. With
// `weight` set, each head row is RMS-normalised first. `scratch` holds `threads` x 2 rows of d.
#include "paradiff/kernels/cpu/row_io.h"

#if defined(__AVX512F__)
// 16 elements of a row of x (f32, or bf16 widened exactly) as floats.
inline __m512 rope_load16(const void* x, DType x_dtype, int64_t at) {
  return x_dtype == DType::F32 ? _mm512_loadu_ps(static_cast<const float*>(x) + at)
                               : load_bf16_vec(static_cast<const bf16*>(x) + at);
}

// One head row of d (a multiple of 16) at `offset`, in zmm registers: the sum of squares in
// double as the generic loop below, then the rotation of each pair (2k, 2k+1) as one FMA-add/sub
// of the row and its pair-swapped copy: even lanes v c - v' s, odd lanes v c + v' s. The generic
// loop's stride-2 form compiled to 256-bit permutes and scalar set-up per row.
inline void rope_row16(const void* x, DType x_dtype, int64_t offset, const float* weight, float eps,
                       const float* c, const float* sv, int64_t d, void* out, DType out_dtype) {
  __m512 inv = _mm512_set1_ps(1.0f);
  if (weight != nullptr) {
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
    for (int64_t i = 0; i < d; i += 16) {
      const __m512 v = rope_load16(x, x_dtype, offset + i);
      const __m512d a = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
      const __m512d b =
          _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
      lo = _mm512_fmadd_pd(a, a, lo);
      hi = _mm512_fmadd_pd(b, b, hi);
    }
    const double sq = _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
    inv = _mm512_set1_ps(static_cast<float>(1.0 / std::sqrt(sq / d + eps)));
  }
  for (int64_t i = 0; i < d; i += 16) {
    __m512 v = rope_load16(x, x_dtype, offset + i);
    if (weight != nullptr) v = _mm512_mul_ps(_mm512_mul_ps(v, inv), _mm512_loadu_ps(weight + i));
    const __m512 swapped = _mm512_permute_ps(v, 0xb1);  // (v1, v0, v3, v2, ...)
    const __m512 r = _mm512_fmaddsub_ps(v, _mm512_loadu_ps(c + i),
                                        _mm512_mul_ps(swapped, _mm512_loadu_ps(sv + i)));
    if (out_dtype == DType::F32) {
      _mm512_storeu_ps(static_cast<float*>(out) + offset + i, r);
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<bf16*>(out) + offset + i),
                          bf16_round_vec(r));
    }
  }
}
#endif

void rope_rows(const void* x, DType x_dtype, const float* weight, float eps, const float* cos,
               const float* sin, int64_t b, int64_t s, int64_t h, int64_t d, float* scratch,
               int threads, void* out, DType out_dtype) {
#pragma omp parallel num_threads(threads)
  {
    float* v = scratch + omp_get_thread_num() * 2 * d;
    float* res = v + d;
#pragma omp for collapse(2) schedule(static)
    for (int64_t bi = 0; bi < b; ++bi) {
      for (int64_t si = 0; si < s; ++si) {
        const float* c = cos + si * d;
        const float* sv = sin + si * d;
        for (int64_t hi = 0; hi < h; ++hi) {
          const int64_t offset = ((bi * s + si) * h + hi) * d;
#if defined(__AVX512F__)
          if (d % 16 == 0) {
            rope_row16(x, x_dtype, offset, weight, eps, c, sv, d, out, out_dtype);
            continue;
          }
#endif
          load_row(x, x_dtype, offset, d, v);
          if (weight != nullptr) {
            double sq = 0.0;
#pragma omp simd reduction(+ : sq)
            for (int64_t i = 0; i < d; ++i) sq += static_cast<double>(v[i]) * v[i];
            const float inv = static_cast<float>(1.0 / std::sqrt(sq / d + eps));
#pragma omp simd
            for (int64_t i = 0; i < d; ++i) v[i] = v[i] * inv * weight[i];
          }
#pragma omp simd
          for (int64_t k = 0; k < d; k += 2) {
            res[k] = v[k] * c[k] - v[k + 1] * sv[k];
            res[k + 1] = v[k + 1] * c[k + 1] + v[k] * sv[k + 1];
          }
          store_row(res, out, out_dtype, offset, d);
        }
      }
    }
  }
}
