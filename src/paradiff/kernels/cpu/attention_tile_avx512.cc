// The avx512 level of the attention tiles (cmake/KernelIsa.cmake compiles this file for it): f32
// tiles (vfmadd231ps) and the packing into the f32 layout, from f32 inputs or from bf16 inputs
// widened exactly to f32 (AVX-512 without AVX512_BF16 computes bf16 attention in f32). The
// avx512_bf16 level runs these for f32 inputs too. The tile kernel is attention_tile_avx512.h.

// GCC 12's AVX-512 headers build _mm512_undefined_ps() from a self-initialised variable, which
// -Wuninitialized reports once max/scalef/roundscale are inlined here (GCC bug 105593, fixed in
// 13). The pragma must precede the header's first inclusion.
#pragma GCC diagnostic ignored "-Wuninitialized"
#if defined(__x86_64__)  // elsewhere the portable tiles serve every level
#include "paradiff/kernels/cpu/attention_tile_avx512.h"

namespace paradiff::kernels::attention_detail {
namespace {

struct F32Ops {
  using Elem = float;

  template <int R>
  static PARADIFF_INLINE void qk(const float* q, int64_t dq, const float* kb,
                                 __m512 (&acc)[R][kVecs]) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
      for (int c = 0; c < kVecs; ++c) acc[r][c] = _mm512_setzero_ps();
    for (int64_t i = 0; i < dq; ++i) {
      const float* kr = kb + i * kKvBlock;
      __m512 kv[kVecs];
#pragma GCC unroll 16
      for (int c = 0; c < kVecs; ++c) kv[c] = _mm512_loadu_ps(kr + 16 * c);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m512 qb = _mm512_set1_ps(q[r * dq + i]);
#pragma GCC unroll 16
        for (int c = 0; c < kVecs; ++c) acc[r][c] = _mm512_fmadd_ps(qb, kv[c], acc[r][c]);
      }
    }
  }

  static PARADIFF_INLINE void store_p(float* p, const __m512 (&pv)[kVecs]) {
#pragma GCC unroll 16
    for (int c = 0; c < kVecs; ++c) _mm512_storeu_ps(p + 16 * c, pv[c]);
  }

  template <int R, int NV>
  static PARADIFF_INLINE void pv(__m512 (&acc)[R][NV], const float* p, const float* vb, int64_t dv,
                                 int64_t d0, int64_t keys) {
    for (int64_t j = 0; j < keys; ++j) {
      const float* vr = vb + j * dv + d0;
      __m512 vv[NV];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) vv[v] = _mm512_loadu_ps(vr + 16 * v);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m512 pb = _mm512_set1_ps(p[r * kKvBlock + j]);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(pb, vv[v], acc[r][v]);
      }
    }
  }
};

}  // namespace

namespace isa_avx512 {

// The f32 layout of attention_tile.h: K transposed by 16 x 16 register transposes (bf16 rows
// widened to f32 as they are loaded), V rows copied (or widened) into rows of dv.
void pack_f32(const HeadLayout& layout, const void* k, const void* v, int64_t stride, int64_t block,
              void* packed_head) {
  float* kb = static_cast<float*>(const_cast<void*>(packed_k(layout, packed_head, block)));
  float* vb = static_cast<float*>(const_cast<void*>(packed_v(layout, packed_head, block)));
  // Zero first: padded keys and padded d must contribute exactly nothing.
  std::memset(kb, 0, static_cast<size_t>(layout.k_block) * sizeof(float));
  std::memset(vb, 0, static_cast<size_t>(layout.v_block) * sizeof(float));
  const int64_t first = block * kKvBlock;
  const int64_t keys = std::min(kKvBlock, layout.skv - first);
  const int64_t d = layout.d, dv = layout.dv;
  if (layout.dtype == DType::F32) {
    const float* ks = static_cast<const float*>(k) + first * stride;
    const float* vs = static_cast<const float*>(v) + first * stride;
    transpose_k(keys, d, reinterpret_cast<int32_t*>(kb), [&](int64_t j, int64_t i0) {
      return _mm512_maskz_loadu_epi32(first_n16(d - i0), ks + j * stride + i0);
    });
    for (int64_t j = 0; j < keys; ++j)
      std::memcpy(vb + j * dv, vs + j * stride, static_cast<size_t>(d) * sizeof(float));
    return;
  }
  // bf16: the 16 bits of a bf16 are the high half of the f32 of the same value.
  const uint16_t* ks = static_cast<const uint16_t*>(k) + first * stride;
  const uint16_t* vs = static_cast<const uint16_t*>(v) + first * stride;
  auto widen16 = [](const uint16_t* p, int64_t n) {
    return _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(first_n16(n), p)), 16);
  };
  transpose_k(keys, d, reinterpret_cast<int32_t*>(kb),
              [&](int64_t j, int64_t i0) { return widen16(ks + j * stride + i0, d - i0); });
  for (int64_t j = 0; j < keys; ++j)
    for (int64_t i = 0; i < d; i += 16)
      _mm512_storeu_si512(vb + j * dv + i, widen16(vs + j * stride + i, d - i));
}

void tile_f32(const TileArgs& args) {
  attend_tile<F32Ops>(args);
}

}  // namespace isa_avx512
}  // namespace paradiff::kernels::attention_detail

#undef PARADIFF_INLINE

#endif  // __x86_64__
