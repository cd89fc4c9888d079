// The avx2 level of the attention tiles (cmake/KernelIsa.cmake compiles this file for it): AVX2 +
// FMA, 8 lanes, f32 arithmetic for f32 inputs and for bf16 inputs (widened exactly to f32 by the
// packing here and by load_q_tile). The same online softmax and lse as the AVX-512 tiles
// (attention_tile_avx512.h); with 16 ymm registers instead of 32 zmm the scores take a trip
// through scratch. For each 64-key block, each group of 6 query rows of the tile does:
//   1. S = Q K^T in 6-row x 16-key register tiles (12 accumulators, 2 K vectors shared by the 6
//      rows, Q elements broadcast), four of them across the block, stored to scratch.p,
//   2. the online softmax of each row: t = s*c - m (c = scale*log2 e), p = 2^t, lane-wise running
//      sums, P stored over S. The running max m moves only when a score passes it by 2^8, so the
//      common path has no horizontal max and nothing to rescale,
//   3. O = alpha * O + P V in 6-row x 16-dim register tiles, the rare rescale fused into
//      loading O.
// Everything here is in namespace isa_avx2 or has internal linkage, and nothing calls an inline
// function of a header shared with other levels (see cmake/KernelIsa.cmake).
#include "paradiff/kernels/cpu/attention_tile.h"

#if defined(__x86_64__)  // elsewhere the portable tiles serve every level
#if !(defined(__AVX2__) && defined(__FMA__))
#error "attention_tile_avx2.cc needs AVX2 and FMA: compile with paradiff_isa_source"
#endif

#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "paradiff/kernels/cpu/attention_exp_avx2.h"
#include "paradiff/kernels/cpu/attention_prefetch.h"

namespace paradiff::kernels::attention_detail {
namespace {

#define PARADIFF_INLINE inline __attribute__((always_inline))

constexpr int kVecs = kKvBlock / 8;  // score vectors per row and block
constexpr int kRows = 6;             // register tiles: kRows x 2 vectors
// log2 domain: p may reach 2^8 before the running max is moved.
constexpr float kRescaleThreshold = 8.0f;
static_assert(kKvBlock == 64, "the softmax below is written for 8 vectors per block row");

PARADIFF_INLINE int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}

// Lanes [0, n) all ones, the rest zero (n clamped to [0, 8]).
PARADIFF_INLINE __m256i first_n(int64_t n) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const auto count = static_cast<int>(n < 0 ? 0 : (n > 8 ? 8 : n));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), lane);
}

PARADIFF_INLINE float hmax(__m256 v) {
  v = _mm256_max_ps(v, _mm256_permute2f128_ps(v, v, 1));
  v = _mm256_max_ps(v, _mm256_shuffle_ps(v, v, 0x4e));
  v = _mm256_max_ps(v, _mm256_shuffle_ps(v, v, 0xb1));
  return _mm256_cvtss_f32(v);
}

PARADIFF_INLINE float hsum(__m256 v) {
  v = _mm256_add_ps(v, _mm256_permute2f128_ps(v, v, 1));
  v = _mm256_add_ps(v, _mm256_shuffle_ps(v, v, 0x4e));
  v = _mm256_add_ps(v, _mm256_shuffle_ps(v, v, 0xb1));
  return _mm256_cvtss_f32(v);
}

// S[r][0:64] for R query rows (q: [R][dq]) against one packed K block ([dq][64]), into sc
// ([R][64], row stride kKvBlock).
template <int R>
PARADIFF_INLINE void qk(const float* q, int64_t dq, const float* kb, float* sc) {
  for (int c = 0; c < kVecs; c += 2) {
    __m256 acc[R][2];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t i = 0; i < dq; ++i) {
      const float* kr = kb + i * kKvBlock + 8 * c;
      const __m256 k0 = _mm256_loadu_ps(kr), k1 = _mm256_loadu_ps(kr + 8);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m256 qb = _mm256_broadcast_ss(q + r * dq + i);
        acc[r][0] = _mm256_fmadd_ps(qb, k0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(qb, k1, acc[r][1]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      _mm256_storeu_ps(sc + r * kKvBlock + 8 * c, acc[r][0]);
      _mm256_storeu_ps(sc + r * kKvBlock + 8 * c + 8, acc[r][1]);
    }
  }
}

// What the softmax of one block needs.
struct Block {
  int64_t keys;  // valid keys in the block, 1..kKvBlock
  float c;       // scale * log2(e): scores go to the log2 domain in one FMA
  __m256 valid[kVecs];
};

// The online softmax of one row's block of scores sc[0:64], in place (scores in, P out): updates
// the running max m and the 8 partial sums l, and returns the factor alpha by which the row's
// earlier P V sums must be rescaled (1 in the common case).
template <bool kTail>
PARADIFF_INLINE float softmax_row(float* sc, float* m_row, float* l, const Block& b) {
  const __m256 cv = _mm256_set1_ps(b.c);
  const __m256 neg_inf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  // The scores stay in scratch (reloaded on the rare rescale): 8 t vectors are half the ymm file.
  __m256 t[kVecs];
  __m256 m = _mm256_set1_ps(*m_row);
#pragma GCC unroll 8
  for (int c = 0; c < kVecs; ++c) {
    t[c] = _mm256_fmsub_ps(_mm256_loadu_ps(sc + 8 * c), cv, m);
    // Padded keys: t = -inf (not s, which would give -inf - m = NaN while m is -inf).
    if constexpr (kTail) t[c] = _mm256_blendv_ps(neg_inf, t[c], b.valid[c]);
  }
  __m256 tmax = t[0];
#pragma GCC unroll 8
  for (int c = 1; c < kVecs; ++c) tmax = _mm256_max_ps(tmax, t[c]);
  float alpha = 1.0f;
  __m256 lv = _mm256_loadu_ps(l);
  // The running max moves only when a score exceeds it by more than the threshold (always on
  // the first block, where m = -inf): p then stays below 2^threshold, harmless in f32.
  if (_mm256_movemask_ps(_mm256_cmp_ps(tmax, _mm256_set1_ps(kRescaleThreshold), _CMP_GT_OQ)) != 0)
      [[unlikely]] {
    // The block's scores, padded keys as -inf.
    auto score = [&](int c) {
      const __m256 s = _mm256_loadu_ps(sc + 8 * c);
      if constexpr (kTail) return _mm256_blendv_ps(neg_inf, s, b.valid[c]);
      return s;
    };
    __m256 smax = score(0);
#pragma GCC unroll 8
    for (int c = 1; c < kVecs; ++c) smax = _mm256_max_ps(smax, score(c));
    // m is kept as the exact float subtracted in t, so that the rescale factor 2^(m_old -
    // m_new) matches the exponents already applied.
    const float m_old = *m_row, m_new = hmax(smax) * b.c;
    alpha = std::exp2(m_old - m_new);  // 0 on the first block (m_old = -inf)
    *m_row = m_new;
    m = _mm256_set1_ps(m_new);
#pragma GCC unroll 8
    for (int c = 0; c < kVecs; ++c) t[c] = _mm256_fmsub_ps(score(c), cv, m);
    lv = _mm256_mul_ps(lv, _mm256_set1_ps(alpha));
  }
  __m256 sum = _mm256_setzero_ps();
#pragma GCC unroll 8
  for (int c = 0; c < kVecs; ++c) {
    __m256 p = exp2_approx(t[c]);
    if constexpr (kTail) p = _mm256_and_ps(p, b.valid[c]);
    sum = _mm256_add_ps(sum, p);
    _mm256_storeu_ps(sc + 8 * c, p);
  }
  _mm256_storeu_ps(l, _mm256_add_ps(lv, sum));
  return alpha;
}

// O[0:R][d0 : d0+16] = alpha * O + P V for one block; o points at (row 0, d0), rows dv apart.
template <int R>
PARADIFF_INLINE void pv(float* o, int64_t dv, const float* p, const float* vb, int64_t keys,
                        const float* alpha, bool rescale) {
  __m256 acc[R][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    acc[r][0] = _mm256_loadu_ps(o + r * dv);
    acc[r][1] = _mm256_loadu_ps(o + r * dv + 8);
    if (rescale) {
      const __m256 a = _mm256_set1_ps(alpha[r]);
      acc[r][0] = _mm256_mul_ps(acc[r][0], a);
      acc[r][1] = _mm256_mul_ps(acc[r][1], a);
    }
  }
  for (int64_t j = 0; j < keys; ++j) {
    const float* vr = vb + j * dv;
    const __m256 v0 = _mm256_loadu_ps(vr), v1 = _mm256_loadu_ps(vr + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 pb = _mm256_broadcast_ss(p + r * kKvBlock + j);
      acc[r][0] = _mm256_fmadd_ps(pb, v0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(pb, v1, acc[r][1]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_ps(o + r * dv, acc[r][0]);
    _mm256_storeu_ps(o + r * dv + 8, acc[r][1]);
  }
}

// One block for R rows starting at r0: Q K^T, softmax, P V.
template <int R>
void block_step(const TileScratch& s, int64_t r0, const HeadLayout& layout, const float* kb,
                const float* vb, const Block& b) {
  float* sc = static_cast<float*>(s.p);
  qk<R>(static_cast<const float*>(s.q) + r0 * layout.dq, layout.dq, kb, sc);
  bool rescale = false;
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r;
    const float alpha = b.keys < kKvBlock
                            ? softmax_row<true>(sc + r * kKvBlock, s.m + row, s.l + row * 16, b)
                            : softmax_row<false>(sc + r * kKvBlock, s.m + row, s.l + row * 16, b);
    s.alpha[row] = alpha;
    rescale |= alpha != 1.0f;
  }
  const int64_t dv = layout.dv;
  for (int64_t d0 = 0; d0 < dv; d0 += 16)
    pv<R>(s.o + r0 * dv + d0, dv, sc, vb + d0, b.keys, s.alpha + r0, rescale);
}

using BlockFn = void (*)(const TileScratch&, int64_t, const HeadLayout&, const float*, const float*,
                         const Block&);
constexpr BlockFn kBlockSteps[kRows] = {block_step<1>, block_step<2>, block_step<3>,
                                        block_step<4>, block_step<5>, block_step<6>};

// 8 x 8 transpose of 32-bit elements held in 8 registers, in place.
PARADIFF_INLINE void transpose8x8(__m256 (&r)[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int g = 0; g < 8; g += 4) {
    u[g + 0] = _mm256_shuffle_ps(t[g], t[g + 2], 0x44);
    u[g + 1] = _mm256_shuffle_ps(t[g], t[g + 2], 0xee);
    u[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0x44);
    u[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0xee);
  }
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm256_permute2f128_ps(u[k], u[4 + k], 0x20);
    r[4 + k] = _mm256_permute2f128_ps(u[k], u[4 + k], 0x31);
  }
}

// Elements [0, n) of a row as 8 floats, the rest zero; nothing past n is read.
PARADIFF_INLINE __m256 load_row(const float* p, int64_t n) {
  return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, first_n(n));
}
PARADIFF_INLINE __m256 load_row(const uint16_t* p, int64_t n) {
  __m128i h;
  if (n >= 8) {
    h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  } else {
    alignas(16) uint16_t part[8] = {};
    std::memcpy(part, p, static_cast<size_t>(n) * sizeof(uint16_t));
    h = _mm_load_si128(reinterpret_cast<const __m128i*>(part));
  }
  // The 16 bits of a bf16 are the high half of the f32 of the same value.
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// The f32 layout of one block from f32 or bf16 rows (E): K transposed 8 x 8 at a time, V rows
// copied or widened into rows of dv.
template <typename E>
void pack_rows(const HeadLayout& layout, const E* ks, const E* vs, int64_t stride, int64_t keys,
               float* kb, float* vb) {
  const int64_t d = layout.d, dv = layout.dv;
  for (int64_t j0 = 0; j0 < keys; j0 += 8) {
    for (int64_t i0 = 0; i0 < d; i0 += 8) {
      __m256 r[8];
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j)
        r[j] = j0 + j < keys ? load_row(ks + (j0 + j) * stride + i0, d - i0) : _mm256_setzero_ps();
      transpose8x8(r);
      const int64_t n = min64(8, d - i0);
      for (int64_t i = 0; i < n; ++i) _mm256_storeu_ps(kb + (i0 + i) * kKvBlock + j0, r[i]);
    }
  }
  for (int64_t j = 0; j < keys; ++j)
    for (int64_t i = 0; i < d; i += 8)
      _mm256_storeu_ps(vb + j * dv + i, load_row(vs + j * stride + i, d - i));
}

}  // namespace

namespace isa_avx2 {

void pack_f32(const HeadLayout& layout, const void* k, const void* v, int64_t stride, int64_t block,
              void* packed_head) {
  float* kb = static_cast<float*>(const_cast<void*>(packed_k(layout, packed_head, block)));
  float* vb = static_cast<float*>(const_cast<void*>(packed_v(layout, packed_head, block)));
  // Zero first: padded keys and padded d must contribute exactly nothing.
  std::memset(kb, 0, static_cast<size_t>(layout.k_block) * sizeof(float));
  std::memset(vb, 0, static_cast<size_t>(layout.v_block) * sizeof(float));
  const int64_t first = block * kKvBlock;
  const int64_t keys = min64(kKvBlock, layout.skv - first);
  if (layout.dtype == DType::F32)
    pack_rows(layout, static_cast<const float*>(k) + first * stride,
              static_cast<const float*>(v) + first * stride, stride, keys, kb, vb);
  else
    pack_rows(layout, static_cast<const uint16_t*>(k) + first * stride,
              static_cast<const uint16_t*>(v) + first * stride, stride, keys, kb, vb);
}

void tile_f32(const TileArgs& a) {
  const HeadLayout& layout = *a.layout;
  const TileScratch s = carve_scratch(layout, a.scratch);
  load_q_tile(a, s);
  const int64_t rows = a.rows;
  for (int64_t r = 0; r < rows; ++r) {
    s.m[r] = -std::numeric_limits<float>::infinity();
    _mm256_storeu_ps(s.l + r * 16, _mm256_setzero_ps());
  }
  std::memset(s.o, 0, static_cast<size_t>(rows * layout.dv) * sizeof(float));

  Block b{};
  b.c = a.scale * static_cast<float>(M_LOG2E);
  const size_t k_bytes = static_cast<size_t>(layout.k_block) * layout.elem_size;
  const size_t v_bytes = static_cast<size_t>(layout.v_block) * layout.elem_size;
  const int64_t groups = (rows + kRows - 1) / kRows;
  for (int64_t blk = 0; blk < layout.blocks; ++blk) {
    const auto* kb = static_cast<const float*>(packed_k(layout, a.packed_head, blk));
    const auto* vb = static_cast<const float*>(packed_v(layout, a.packed_head, blk));
    b.keys = min64(kKvBlock, layout.skv - blk * kKvBlock);
    for (int c = 0; c < kVecs; ++c) b.valid[c] = _mm256_castsi256_ps(first_n(b.keys - 8 * c));
    // While this block runs, the next one's K and V come into L2, a share per register tile.
    const bool next = blk + 1 < layout.blocks;
    const void* next_k = next ? packed_k(layout, a.packed_head, blk + 1) : nullptr;
    const void* next_v = next ? packed_v(layout, a.packed_head, blk + 1) : nullptr;
    for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
      if (next) {
        prefetch_slice_l2(next_k, k_bytes, r0 / kRows, groups);
        prefetch_slice_l2(next_v, v_bytes, r0 / kRows, groups);
      }
      kBlockSteps[min64(kRows, rows - r0) - 1](s, r0, layout, kb, vb, b);
    }
  }

  float l_total[kTileRows];
  for (int64_t r = 0; r < rows; ++r) l_total[r] = hsum(_mm256_loadu_ps(s.l + r * 16));
  write_tile(a, s, l_total);
}

}  // namespace isa_avx2
}  // namespace paradiff::kernels::attention_detail

#undef PARADIFF_INLINE

#endif  // __x86_64__
