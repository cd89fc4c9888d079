// The avx512_bf16 level of the attention tiles (cmake/KernelIsa.cmake compiles this file for it):
// bf16 tiles whose two products are vdpbf16ps (pairs of bf16 products summed into f32 lanes), P
// rounded to bf16 for P V, and the packing into the bf16 pair layout. f32 inputs at this level run
// the avx512 f32 tiles (attention_tile_avx512.cc). The tile kernel is attention_tile_avx512.h.

// GCC 12's AVX-512 headers trip -Wuninitialized once inlined (GCC bug 105593): see
// attention_tile_avx512.cc. The pragma must precede the header's first inclusion.
#pragma GCC diagnostic ignored "-Wuninitialized"
#if defined(__x86_64__)  // elsewhere the portable tiles serve every level
#include "paradiff/kernels/cpu/attention_tile_avx512.h"

#if !defined(__AVX512BF16__)
#error "attention_tile_avx512_bf16.cc needs AVX512_BF16: compile with paradiff_isa_source"
#endif

namespace paradiff::kernels::attention_detail {
namespace {

struct Bf16Ops {
  using Elem = uint16_t;

  static PARADIFF_INLINE __m512bh load_bh(const uint16_t* p) {
    return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p));
  }
  // Two consecutive bf16 as one 32-bit pattern, broadcast to all 16 lanes.
  static PARADIFF_INLINE __m512bh broadcast_pair(const uint16_t* p) {
    int32_t pair;
    std::memcpy(&pair, p, sizeof pair);
    return reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
  }

  template <int R>
  static PARADIFF_INLINE void qk(const uint16_t* q, int64_t dq, const uint16_t* kb,
                                 __m512 (&acc)[R][kVecs]) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
      for (int c = 0; c < kVecs; ++c) acc[r][c] = _mm512_setzero_ps();
    const int64_t pairs = dq / 2;
    for (int64_t i = 0; i < pairs; ++i) {
      const uint16_t* kr = kb + i * (2 * kKvBlock);
      __m512bh kv[kVecs];
#pragma GCC unroll 16
      for (int c = 0; c < kVecs; ++c) kv[c] = load_bh(kr + 32 * c);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m512bh qb = broadcast_pair(q + r * dq + 2 * i);
#pragma GCC unroll 16
        for (int c = 0; c < kVecs; ++c) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], kv[c], qb);
      }
    }
  }

  static PARADIFF_INLINE void store_p(uint16_t* p, const __m512 (&pv)[kVecs]) {
    // cvtne2ps_pbh(a, b) puts b's 16 values first: keys stay in order.
    _mm512_storeu_si512(p, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(pv[1], pv[0])));
    _mm512_storeu_si512(p + 32, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(pv[3], pv[2])));
  }

  template <int R, int NV>
  static PARADIFF_INLINE void pv(__m512 (&acc)[R][NV], const uint16_t* p, const uint16_t* vb,
                                 int64_t dv, int64_t d0, int64_t keys) {
    const int64_t pairs = (keys + 1) / 2;  // an odd tail pairs with a zero P and a zero V row
    for (int64_t jp = 0; jp < pairs; ++jp) {
      const uint16_t* vr = vb + jp * (2 * dv) + 2 * d0;
      __m512bh vv[NV];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) vv[v] = load_bh(vr + 32 * v);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m512bh pb = broadcast_pair(p + r * kKvBlock + 2 * jp);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], vv[v], pb);
      }
    }
  }
};

}  // namespace

namespace isa_avx512_bf16 {

// The bf16 pair layout of attention_tile.h, with the K transposes done by 16 x 16 register
// transposes of bf16 pairs and the V pairs interleaved 16 dims at a time.
void pack_bf16_pairs(const HeadLayout& layout, const void* k, const void* v, int64_t stride,
                     int64_t block, void* packed_head) {
  uint16_t* kb = static_cast<uint16_t*>(const_cast<void*>(packed_k(layout, packed_head, block)));
  uint16_t* vb = static_cast<uint16_t*>(const_cast<void*>(packed_v(layout, packed_head, block)));
  // Zero first: padded keys and padded d must contribute exactly nothing.
  std::memset(kb, 0, static_cast<size_t>(layout.k_block) * sizeof(uint16_t));
  std::memset(vb, 0, static_cast<size_t>(layout.v_block) * sizeof(uint16_t));
  const int64_t first = block * kKvBlock;
  const int64_t keys = std::min(kKvBlock, layout.skv - first);
  const int64_t d = layout.d, dv = layout.dv;
  const uint16_t* ks = static_cast<const uint16_t*>(k) + first * stride;
  const uint16_t* vs = static_cast<const uint16_t*>(v) + first * stride;
  // K: element (key j, dim i) at [i/2][j][i%2]: the transpose of the rows read as pairs. The
  // loads are masked per bf16, so an odd D never reads past a row (or the tensor).
  transpose_k(keys, layout.dq / 2, reinterpret_cast<int32_t*>(kb), [&](int64_t j, int64_t i0) {
    return _mm512_maskz_loadu_epi16(first_n32(d - 2 * i0), ks + j * stride + 2 * i0);
  });
  // V: element (key j, dim i) at [j/2][i][j%2]: two key rows interleaved, 16 dims at a time.
  for (int64_t j = 0; j < keys; j += 2) {
    const uint16_t* even = vs + j * stride;
    const uint16_t* odd = j + 1 < keys ? even + stride : nullptr;
    uint16_t* dst = vb + j * dv;  // = (j / 2) * (2 * dv)
    for (int64_t i = 0; i < d; i += 16) {
      const __mmask16 valid = first_n16(d - i);
      const __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(valid, even + i));
      const __m512i hi = odd != nullptr
                             ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(valid, odd + i))
                             : _mm512_setzero_si512();
      _mm512_storeu_si512(dst + 2 * i, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
  }
}

void tile_bf16_pairs(const TileArgs& args) {
  attend_tile<Bf16Ops>(args);
}

}  // namespace isa_avx512_bf16
}  // namespace paradiff::kernels::attention_detail

#undef PARADIFF_INLINE

#endif  // __x86_64__
