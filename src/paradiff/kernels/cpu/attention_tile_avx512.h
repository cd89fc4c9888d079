// The AVX-512 tile kernel of kernels::attention, generic over the arithmetic of the two
// products (Ops: f32 FMAs in attention_tile_avx512.cc, bf16 pair dot products in
// attention_tile_avx512_bf16.cc), and the register transposes of the K packing. For each 64-key
// block, each group of 6 query rows of the tile does steps 1 and 2 while the block's packed K
// sits in L1, then each group does step 3 while its V does (K and V together would not fit):
//   1. S = Q K^T in a 6-row x 64-key register tile (24 accumulators; K vectors shared by the 6
//      rows, Q elements broadcast),
//   2. the online softmax on those registers before they leave: t = s*c - m (c = scale*log2 e),
//      p = 2^t, lane-wise running sums, P stored (in the packed dtype). The running max m
//      moves only when a score passes it by 2^8, so the common path has no horizontal max and
//      nothing to rescale,
//   3. O = alpha * O + P V in 6-row x 64-dim register tiles, the rare rescale fused into
//      loading O.
// Nothing of size Sq x Skv is ever stored.
//
// Include only in the AVX-512 variant files (compiled by cmake/KernelIsa.cmake for their level),
// after "#pragma GCC diagnostic ignored -Wuninitialized" (see those files). Everything here has
// internal linkage, so each variant file keeps its own copy, compiled for its own level.
#pragma once

#if !(defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__))
#error "attention_tile_avx512.h needs AVX-512 F/BW/VL: compile with paradiff_isa_source"
#endif

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "paradiff/kernels/cpu/attention_exp_avx512.h"
#include "paradiff/kernels/cpu/attention_prefetch.h"
#include "paradiff/kernels/cpu/attention_tile.h"

namespace paradiff::kernels::attention_detail {
namespace {

#define PARADIFF_INLINE inline __attribute__((always_inline))

constexpr int kVecs = kKvBlock / 16;  // score vectors per row and block
constexpr int kQkRows = 6;            // Q K^T register tile: 6 x kVecs accumulators
constexpr int kPvRows = 6;            // P V register tile: kPvRows x kPvVecs accumulators
constexpr int kPvVecs = 4;
// log2 domain: p may reach 2^8 before the running max is moved.
constexpr float kRescaleThreshold = 8.0f;
static_assert(kKvBlock == 64, "the softmax below is written for 4 vectors per block row");

// What every step of one K/V block needs.
struct Block {
  const void* k;
  const void* v;
  int64_t dq, dv;
  int64_t keys;  // valid keys in the block, 1..kKvBlock
  float c;       // scale * log2(e): scores go to the log2 domain in one FMA
  __mmask16 valid[kVecs];
};

// Q K^T and the online softmax for R rows starting at r0.
template <class Ops, int R, bool kTail>
void qk_softmax(const TileScratch& s, int64_t r0, const Block& b) {
  using E = typename Ops::Elem;
  __m512 acc[R][kVecs];
  Ops::template qk<R>(static_cast<const E*>(s.q) + r0 * b.dq, b.dq, static_cast<const E*>(b.k),
                      acc);
  const __m512 cv = _mm512_set1_ps(b.c);
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512 threshold = _mm512_set1_ps(kRescaleThreshold);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r;
    // t = scale * log2(e) * s - m: the exponent of p, in one FMA per vector.
    __m512 t[kVecs];
    __m512 m = _mm512_set1_ps(s.m[row]);
#pragma GCC unroll 16
    for (int c = 0; c < kVecs; ++c) {
      t[c] = _mm512_fmsub_ps(acc[r][c], cv, m);
      if constexpr (kTail) t[c] = _mm512_mask_mov_ps(neg_inf, b.valid[c], t[c]);
    }
    const __m512 tmax = _mm512_max_ps(_mm512_max_ps(t[0], t[1]), _mm512_max_ps(t[2], t[3]));
    float alpha = 1.0f;
    // The running max m moves only when a score exceeds it by more than the threshold (always
    // on the first block, where m = -inf): p then stays below 2^threshold, harmless in f32 and
    // bf16, and the common path needs no horizontal max and rescales nothing.
    if (_mm512_cmp_ps_mask(tmax, threshold, _CMP_GT_OQ) != 0) [[unlikely]] {
      if constexpr (kTail)
#pragma GCC unroll 16
        for (int c = 0; c < kVecs; ++c)
          acc[r][c] = _mm512_mask_mov_ps(neg_inf, b.valid[c], acc[r][c]);
      const __m512 smax =
          _mm512_max_ps(_mm512_max_ps(acc[r][0], acc[r][1]), _mm512_max_ps(acc[r][2], acc[r][3]));
      // m is kept as the exact float subtracted in t, so that the rescale factor 2^(m_old -
      // m_new) matches the exponents already applied.
      const float m_old = s.m[row], m_new = _mm512_reduce_max_ps(smax) * b.c;
      alpha = std::exp2(m_old - m_new);  // 0 on the first block (m_old = -inf)
      s.m[row] = m_new;
      m = _mm512_set1_ps(m_new);
#pragma GCC unroll 16
      for (int c = 0; c < kVecs; ++c) t[c] = _mm512_fmsub_ps(acc[r][c], cv, m);
      float* l = s.l + row * 16;
      _mm512_storeu_ps(l, _mm512_mul_ps(_mm512_loadu_ps(l), _mm512_set1_ps(alpha)));
    }
    s.alpha[row] = alpha;
    __m512 p[kVecs];
#pragma GCC unroll 16
    for (int c = 0; c < kVecs; ++c) {
      p[c] = exp2_approx(t[c]);
      if constexpr (kTail) p[c] = _mm512_maskz_mov_ps(b.valid[c], p[c]);
    }
    const __m512 sum = _mm512_add_ps(_mm512_add_ps(p[0], p[1]), _mm512_add_ps(p[2], p[3]));
    float* l = s.l + row * 16;
    _mm512_storeu_ps(l, _mm512_add_ps(_mm512_loadu_ps(l), sum));
    Ops::store_p(static_cast<E*>(s.p) + row * kKvBlock, p);
  }
}

// O[r0 : r0+R, d0 : d0+16*NV] = alpha * O + P V for one block.
template <class Ops, int R, int NV>
void pv_step(const TileScratch& s, int64_t r0, int64_t d0, const Block& b, bool rescale) {
  using E = typename Ops::Elem;
  __m512 acc[R][NV];
  float* o = s.o + r0 * b.dv + d0;
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const __m512 alpha = _mm512_set1_ps(s.alpha[r0 + r]);
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      acc[r][v] = _mm512_loadu_ps(o + r * b.dv + 16 * v);
      if (rescale) acc[r][v] = _mm512_mul_ps(acc[r][v], alpha);
    }
  }
  Ops::template pv<R, NV>(acc, static_cast<const E*>(s.p) + r0 * kKvBlock,
                          static_cast<const E*>(b.v), b.dv, d0, b.keys);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(o + r * b.dv + 16 * v, acc[r][v]);
}

using QkFn = void (*)(const TileScratch&, int64_t, const Block&);
using PvFn = void (*)(const TileScratch&, int64_t, int64_t, const Block&, bool);

// Tables indexed by the register-tile size, for the ragged edges of a tile.
template <class Ops, bool kTail, size_t... I>
constexpr std::array<QkFn, sizeof...(I)> qk_table(std::index_sequence<I...>) {
  return {&qk_softmax<Ops, static_cast<int>(I) + 1, kTail>...};
}
template <class Ops, size_t... I>
constexpr std::array<PvFn, sizeof...(I)> pv_table(std::index_sequence<I...>) {
  return {&pv_step<Ops, static_cast<int>(I / kPvVecs) + 1, static_cast<int>(I % kPvVecs) + 1>...};
}

template <class Ops>
void attend_tile(const TileArgs& a) {
  static constexpr auto qk_full = qk_table<Ops, false>(std::make_index_sequence<kQkRows>());
  static constexpr auto qk_tail = qk_table<Ops, true>(std::make_index_sequence<kQkRows>());
  static constexpr auto pv_fns = pv_table<Ops>(std::make_index_sequence<kPvRows * kPvVecs>());

  const HeadLayout& layout = *a.layout;
  const TileScratch s = carve_scratch(layout, a.scratch);
  load_q_tile(a, s);
  const int64_t rows = a.rows;
  for (int64_t r = 0; r < rows; ++r) {
    s.m[r] = -std::numeric_limits<float>::infinity();
    _mm512_storeu_ps(s.l + r * 16, _mm512_setzero_ps());
  }
  std::memset(s.o, 0, static_cast<size_t>(rows * layout.dv) * sizeof(float));

  Block b{};
  b.dq = layout.dq;
  b.dv = layout.dv;
  b.c = a.scale * static_cast<float>(M_LOG2E);
  const size_t k_bytes = static_cast<size_t>(layout.k_block) * layout.elem_size;
  const size_t v_bytes = static_cast<size_t>(layout.v_block) * layout.elem_size;
  const int64_t groups = (rows + kQkRows - 1) / kQkRows;
  for (int64_t blk = 0; blk < layout.blocks; ++blk) {
    b.k = packed_k(layout, a.packed_head, blk);
    b.v = packed_v(layout, a.packed_head, blk);
    b.keys = std::min(kKvBlock, layout.skv - blk * kKvBlock);
#pragma GCC unroll 16
    for (int c = 0; c < kVecs; ++c) {
      const int64_t n = std::clamp<int64_t>(b.keys - 16 * c, 0, 16);
      b.valid[c] = static_cast<__mmask16>((1u << n) - 1u);
    }
    const auto& qk = b.keys < kKvBlock ? qk_tail : qk_full;
    // While Q K^T runs on this block's K, its V comes into L2; while P V runs, the next block's K.
    const void* next_k =
        blk + 1 < layout.blocks ? packed_k(layout, a.packed_head, blk + 1) : nullptr;
    for (int64_t r0 = 0; r0 < rows; r0 += kQkRows) {
      prefetch_slice_l2(b.v, v_bytes, r0 / kQkRows, groups);
      qk[std::min<int64_t>(kQkRows, rows - r0) - 1](s, r0, b);
    }
    for (int64_t r0 = 0; r0 < rows; r0 += kQkRows) {
      if (next_k != nullptr) prefetch_slice_l2(next_k, k_bytes, r0 / kQkRows, groups);
      const int64_t n = std::min<int64_t>(kQkRows, rows - r0);
      bool rescale = false;
      for (int64_t r = 0; r < n; ++r) rescale |= s.alpha[r0 + r] != 1.0f;
      for (int64_t d0 = 0; d0 < layout.dv; d0 += 16 * kPvVecs) {
        const int64_t nv = std::min<int64_t>(kPvVecs, (layout.dv - d0) / 16);
        pv_fns[(n - 1) * kPvVecs + (nv - 1)](s, r0, d0, b, rescale);
      }
    }
  }

  float l_total[kTileRows];
  for (int64_t r = 0; r < rows; ++r)
    l_total[r] = _mm512_reduce_add_ps(_mm512_loadu_ps(s.l + r * 16));
  write_tile(a, s, l_total);
}

// Transposes a 16 x 16 matrix of 32-bit elements held in 16 registers, in place.
PARADIFF_INLINE void transpose16x16(__m512i (&r)[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {  // within 128-bit lanes: pairs of rows
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  // u[4g + k], lane L: rows 4g..4g+3 of column 4L + k.
  __m512i u[16];
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  // Column 4L + k: lane L of u[k], u[4 + k], u[8 + k], u[12 + k] (a 4 x 4 transpose of lanes).
  for (int k = 0; k < 4; ++k) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[k], u[4 + k], 0x44);
    const __m512i v1 = _mm512_shuffle_i32x4(u[k], u[4 + k], 0xee);
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0x44);
    const __m512i v3 = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0xee);
    r[k] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    r[4 + k] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
    r[8 + k] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    r[12 + k] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
  }
}

// The K block as a transpose of 32-bit elements: out[i][j] (row stride kKvBlock) = element i
// of key row j, for keys j < keys and 32-bit columns i < cols. load(j, i0) returns 16 elements
// i0.. of key row j with those past the row's end zeroed (and not read).
template <typename Load>
PARADIFF_INLINE void transpose_k(int64_t keys, int64_t cols, int32_t* out, Load load) {
  for (int64_t j0 = 0; j0 < keys; j0 += 16) {
    for (int64_t i0 = 0; i0 < cols; i0 += 16) {
      __m512i r[16];
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) r[j] = j0 + j < keys ? load(j0 + j, i0) : _mm512_setzero_si512();
      transpose16x16(r);
      const int64_t n = std::min<int64_t>(16, cols - i0);
      for (int64_t i = 0; i < n; ++i) _mm512_storeu_si512(out + (i0 + i) * kKvBlock + j0, r[i]);
    }
  }
}

PARADIFF_INLINE __mmask16 first_n16(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xffffu) : static_cast<__mmask16>((1u << n) - 1u);
}
PARADIFF_INLINE __mmask32 first_n32(int64_t n) {
  return n >= 32 ? static_cast<__mmask32>(0xffffffffu) : static_cast<__mmask32>((1u << n) - 1u);
}

}  // namespace
}  // namespace paradiff::kernels::attention_detail
