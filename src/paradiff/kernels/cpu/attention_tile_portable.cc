// The portable level of the attention tiles: what runs where the CPU has no AVX2 (or is not x86),
// compiled for the build's target. Same packed layouts as the SIMD levels, same online softmax,
// bf16 inputs in the bf16 pair layout with P rounded to bf16 (as the avx512_bf16 tiles); plain
// loops that the compiler may vectorise. Correct, not fast.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "paradiff/kernels/cpu/attention_tile.h"

namespace paradiff::kernels::attention_detail {
namespace {

// Packs one block in either layout of attention_tile.h by plain loops (bf16 inputs widened for
// the f32 layout).
void pack_block(const HeadLayout& layout, const void* k, const void* v, int64_t stride,
                int64_t block, void* packed_head) {
  auto* kp = const_cast<void*>(packed_k(layout, packed_head, block));
  auto* vp = const_cast<void*>(packed_v(layout, packed_head, block));
  const size_t es = layout.elem_size;
  // Zero first: padded keys and padded d must contribute exactly nothing.
  std::memset(kp, 0, static_cast<size_t>(layout.k_block) * es);
  std::memset(vp, 0, static_cast<size_t>(layout.v_block) * es);
  const int64_t first = block * kKvBlock;
  const int64_t keys = std::min(kKvBlock, layout.skv - first);
  const int64_t d = layout.d, dv = layout.dv;
  if (layout.dtype == DType::BF16 && layout.packed == DType::F32) {
    const uint16_t* ks = static_cast<const uint16_t*>(k) + first * stride;
    const uint16_t* vs = static_cast<const uint16_t*>(v) + first * stride;
    float* kb = static_cast<float*>(kp);
    float* vb = static_cast<float*>(vp);
    for (int64_t j = 0; j < keys; ++j) {
      for (int64_t i = 0; i < d; ++i) {
        kb[i * kKvBlock + j] = bf16_to_float(bf16{ks[j * stride + i]});
        vb[j * dv + i] = bf16_to_float(bf16{vs[j * stride + i]});
      }
    }
  } else if (layout.dtype == DType::F32) {
    const float* ks = static_cast<const float*>(k) + first * stride;
    const float* vs = static_cast<const float*>(v) + first * stride;
    float* kb = static_cast<float*>(kp);
    float* vb = static_cast<float*>(vp);
    for (int64_t j = 0; j < keys; ++j) {
      const float* krow = ks + j * stride;
      for (int64_t i = 0; i < d; ++i) kb[i * kKvBlock + j] = krow[i];
      std::memcpy(vb + j * dv, vs + j * stride, static_cast<size_t>(d) * sizeof(float));
    }
  } else {
    const uint16_t* ks = static_cast<const uint16_t*>(k) + first * stride;
    const uint16_t* vs = static_cast<const uint16_t*>(v) + first * stride;
    uint16_t* kb = static_cast<uint16_t*>(kp);
    uint16_t* vb = static_cast<uint16_t*>(vp);
    for (int64_t j = 0; j < keys; ++j) {
      const uint16_t* krow = ks + j * stride;
      // K: element (key j, dim i) at [i/2][j][i%2].
      for (int64_t i = 0; i < d; ++i) kb[(i >> 1) * (2 * kKvBlock) + 2 * j + (i & 1)] = krow[i];
      // V: element (key j, dim i) at [j/2][i][j%2].
      const uint16_t* vrow = vs + j * stride;
      uint16_t* vdst = vb + (j >> 1) * (2 * dv) + (j & 1);
      for (int64_t i = 0; i < d; ++i) vdst[2 * i] = vrow[i];
    }
  }
}

// Element (key j, dim i) of a packed K block, and (key j, dim i) of a packed V block.
template <typename E>
float k_at(const E* kb, int64_t j, int64_t i) {
  if constexpr (std::is_same_v<E, float>) {
    return kb[i * kKvBlock + j];
  } else {
    return bf16_to_float(bf16{kb[(i >> 1) * (2 * kKvBlock) + 2 * j + (i & 1)]});
  }
}

template <typename E>
float q_at(const E* q, int64_t i) {
  if constexpr (std::is_same_v<E, float>) {
    return q[i];
  } else {
    return bf16_to_float(bf16{q[i]});
  }
}

template <typename E>
void attend_tile_portable(const TileArgs& a) {
  constexpr bool kBf16 = !std::is_same_v<E, float>;
  const HeadLayout& layout = *a.layout;
  const TileScratch s = carve_scratch(layout, a.scratch);
  load_q_tile(a, s);
  const int64_t rows = a.rows, dq = layout.dq, dv = layout.dv;
  const float c = a.scale * static_cast<float>(M_LOG2E);
  float l_total[kTileRows];
  for (int64_t r = 0; r < rows; ++r) {
    s.m[r] = -std::numeric_limits<float>::infinity();
    l_total[r] = 0.0f;
  }
  std::memset(s.o, 0, static_cast<size_t>(rows * dv) * sizeof(float));
  float prob[kKvBlock];
  for (int64_t blk = 0; blk < layout.blocks; ++blk) {
    const E* kb = static_cast<const E*>(packed_k(layout, a.packed_head, blk));
    const E* vb = static_cast<const E*>(packed_v(layout, a.packed_head, blk));
    const int64_t keys = std::min(kKvBlock, layout.skv - blk * kKvBlock);
    for (int64_t r = 0; r < rows; ++r) {
      const E* q = static_cast<const E*>(s.q) + r * dq;
      float block_max = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < keys; ++j) {
        float acc = 0.0f;
        for (int64_t i = 0; i < dq; ++i) acc += q_at(q, i) * k_at(kb, j, i);
        prob[j] = acc;
        block_max = std::max(block_max, acc * c);
      }
      float alpha = 1.0f;
      if (block_max > s.m[r]) {
        alpha = std::exp2(s.m[r] - block_max);
        s.m[r] = block_max;
      }
      float sum = 0.0f;
      for (int64_t j = 0; j < keys; ++j) {
        float pj = std::exp2(std::fma(prob[j], c, -s.m[r]));
        sum += pj;
        if constexpr (kBf16) pj = bf16_to_float(float_to_bf16(pj));  // as the bf16 P V product
        prob[j] = pj;
      }
      l_total[r] = l_total[r] * alpha + sum;
      float* o = s.o + r * dv;
      for (int64_t i = 0; i < dv; ++i) o[i] *= alpha;
      for (int64_t j = 0; j < keys; ++j) {
        const float pj = prob[j];
        if constexpr (kBf16) {
          const uint16_t* vrow = vb + (j >> 1) * (2 * dv) + (j & 1);
#pragma omp simd
          for (int64_t i = 0; i < dv; ++i) o[i] += pj * bf16_to_float(bf16{vrow[2 * i]});
        } else {
          const float* vrow = vb + j * dv;
#pragma omp simd
          for (int64_t i = 0; i < dv; ++i) o[i] += pj * vrow[i];
        }
      }
    }
  }
  write_tile(a, s, l_total);
}

}  // namespace

namespace isa_portable {

void pack_f32(const HeadLayout& layout, const void* k, const void* v, int64_t stride, int64_t block,
              void* packed_head) {
  pack_block(layout, k, v, stride, block, packed_head);
}

void tile_f32(const TileArgs& args) {
  attend_tile_portable<float>(args);
}

void pack_bf16_pairs(const HeadLayout& layout, const void* k, const void* v, int64_t stride,
                     int64_t block, void* packed_head) {
  pack_block(layout, k, v, stride, block, packed_head);
}

void tile_bf16_pairs(const TileArgs& args) {
  attend_tile_portable<uint16_t>(args);
}

}  // namespace isa_portable

}  // namespace paradiff::kernels::attention_detail
