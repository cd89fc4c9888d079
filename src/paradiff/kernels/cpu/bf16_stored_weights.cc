#include "paradiff/kernels/cpu/bf16_stored_weights.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

#include "paradiff/core/error.h"
#include "paradiff/core/tensor.h"
#include "paradiff/kernels/cpu/onednn_context.h"

namespace paradiff::kernels::cpu {

namespace {

// Elements per OpenMP chunk: large enough that a chunk's stores stream, small enough to balance.
constexpr int64_t kChunk = 1 << 16;

Tensor& scratch() {
  thread_local Tensor buffer;
  return buffer;
}

}  // namespace

void widen_bf16(const bf16* src, float* dst, int64_t count) {
  const auto* in = reinterpret_cast<const uint16_t*>(src);
  auto* out = reinterpret_cast<uint32_t*>(dst);
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t end = std::min(count, (c + 1) * kChunk);
    // A plain loop: the compiler vectorises it for the build's target (zero-extend, shift).
    for (int64_t i = c * kChunk; i < end; ++i) out[i] = static_cast<uint32_t>(in[i]) << 16;
  }
}

size_t Bf16StoredWeights::storage_bytes(const dnnl::memory::desc& f32_desc) {
  return f32_desc.get_size() / 2;
}

void Bf16StoredWeights::narrow_into(const dnnl::memory& packed, std::byte* dst) {
  PARADIFF_CHECK(packed.get_desc().data_type() == dnnl::memory::data_type::f32,
                 "bf16-stored weights must come from an f32 layout");
  const int64_t count = static_cast<int64_t>(packed.get_desc().get_size() / 4);
  const auto* in = static_cast<const uint32_t*>(packed.get_data_handle());
  auto* out = reinterpret_cast<uint16_t*>(dst);
#pragma omp parallel for schedule(static) if (count > kChunk)
  for (int64_t i = 0; i < count; ++i) out[i] = static_cast<uint16_t>(in[i] >> 16);
}

Bf16StoredWeights::Bf16StoredWeights(const dnnl::memory::desc& f32_desc,
                                     std::shared_ptr<const std::byte> storage)
    : desc_(f32_desc), storage_(std::move(storage)), layout_(read_layout(f32_desc)) {}

Bf16StoredWeights::Layout Bf16StoredWeights::read_layout(const dnnl::memory::desc& desc) {
  Layout l;
  const dnnl_memory_desc_t& d = desc.data;
  if (d.ndims != 2 || d.format_kind != dnnl_blocked) return l;
  const dnnl_blocking_desc_t& b = d.format_desc.blocking;
  l.k = d.dims[0];
  l.n = d.dims[1];
  l.sk = b.strides[0];
  l.sn = b.strides[1];
  if (b.inner_nblks == 0 && l.sn == 1) {
    l.bn = d.padded_dims[1];  // row-major: one block of every column
    l.sn = 0;
  } else if (b.inner_nblks == 1 && b.inner_idxs[0] == 1) {
    l.bn = b.inner_blks[0];
  } else if (b.inner_nblks == 2 && b.inner_idxs[0] == 0 && b.inner_idxs[1] == 1) {
    l.bk = b.inner_blks[0];
    l.bn = b.inner_blks[1];
  } else {
    return l;
  }
  l.readable = true;
  return l;
}

namespace {

// Rows handled by one pass of multiply_rows; more rows are done in several passes.
constexpr int64_t kRowsPerPass = 4;
// Columns of one task. Blocked layouts (oneDNN's AVX-512 fp32 packing): a block's 64-column
// runs, contiguous for the whole of K. Row-major weights (its AVX2 packing): 512 columns, so
// that each k reads 1 KiB of a row rather than one cache line per page.
constexpr int64_t kRun = 64;
constexpr int64_t kMaxTile = 512;

// Row starts of the tile a thread works on, kept for its next tiles.
std::vector<const uint16_t*>& rows_buffer() {
  thread_local std::vector<const uint16_t*> rows;
  return rows;
}

inline float widen_one(uint16_t v) {
  return std::bit_cast<float>(static_cast<uint32_t>(v) << 16);
}

// 16 lanes as GCC/Clang vector types: one zmm, or two ymm on AVX2 (never passed by value, so
// the calling convention does not depend on the target).
typedef float F32x16 __attribute__((vector_size(64)));
typedef uint16_t U16x32 __attribute__((vector_size(64)));

// 32 bf16 values (one 64-byte load) as two vectors of 16 floats, by interleaving them with zeros
// within each 128-bit lane (vpunpcklwd / vpunpckhwd): a bf16 is the high half of its float. The
// columns come out permuted: `lo` holds columns {0-3, 8-11, 16-19, 24-27}, `hi` the others
// (column_of below); the sums are put back in order once, at the end.
#define PARADIFF_UNPACK_LANE(l, o)                                                                 \
  8 * l + o, 32 + 8 * l + o, 8 * l + o + 1, 32 + 8 * l + o + 1, 8 * l + o + 2, 32 + 8 * l + o + 2, \
      8 * l + o + 3, 32 + 8 * l + o + 3
#define PARADIFF_UNPACK(o)                                                            \
  PARADIFF_UNPACK_LANE(0, o), PARADIFF_UNPACK_LANE(1, o), PARADIFF_UNPACK_LANE(2, o), \
      PARADIFF_UNPACK_LANE(3, o)

// The column (within its group of 32) of element e of the pair of vectors (e < 16: lo).
constexpr int64_t column_of(int64_t e) {
  return e < 16 ? 8 * (e / 4) + e % 4 : 8 * ((e - 16) / 4) + 4 + (e - 16) % 4;
}

// y[m, j] = sum_k x[m, k] w(k, j) for m < NR, j < len, where w(k, j) = row[k][j]: `row[k]` is
// the bf16 run of row k of this tile. K goes in chunks whose weights stay in L1/L2 while every
// column group of the tile passes over them; within a chunk the NR x V x 16 accumulators live in
// registers (at least 4 independent FMA chains, at most 8 zmm or 16 ymm registers).
template <int NR>
void tile_product(const float* x, int64_t ldx, int64_t k_count, const uint16_t* const* row,
                  int64_t len, float* y, int64_t ldy) {
  constexpr int G = NR == 1 ? 2 : 1;  // groups of 32 columns per pass
  constexpr int V = 2 * G;            // vectors of 16 per row
  constexpr int64_t kWidth = 32 * G;
  constexpr int64_t kChunkRows = 128;
  alignas(64) float sums[NR][kMaxTile] = {};  // vector part in the unpack order
  const int64_t vec_len = len / 32 * 32;
  const int64_t wide_len = len / kWidth * kWidth;
  const U16x32 zero = {};
  for (int64_t k0 = 0; k0 < k_count; k0 += kChunkRows) {
    const int64_t k1 = std::min(k_count, k0 + kChunkRows);
    for (int64_t c = 0; c < vec_len; c += kWidth) {
      const int groups = c < wide_len ? G : 1;  // a last single group when 32 remain
      F32x16 acc[NR][V];
      for (int m = 0; m < NR; ++m)
        for (int v = 0; v < V; ++v)
          if (v < 2 * groups) std::memcpy(&acc[m][v], &sums[m][c + 16 * v], 64);
      if (groups == G) {
        for (int64_t k = k0; k < k1; ++k) {
          const uint16_t* p = row[k] + c;
          F32x16 w[V];
#pragma GCC unroll 2
          for (int g = 0; g < G; ++g) {
            U16x32 raw;
            std::memcpy(&raw, p + 32 * g, sizeof(raw));
            const U16x32 lo = __builtin_shufflevector(zero, raw, PARADIFF_UNPACK(0));
            const U16x32 hi = __builtin_shufflevector(zero, raw, PARADIFF_UNPACK(4));
            std::memcpy(&w[2 * g], &lo, 64);
            std::memcpy(&w[2 * g + 1], &hi, 64);
          }
#pragma GCC unroll 4
          for (int m = 0; m < NR; ++m) {
            const float xv = x[m * ldx + k];
#pragma GCC unroll 4
            for (int v = 0; v < V; ++v) acc[m][v] += xv * w[v];
          }
        }
      } else {
        for (int64_t k = k0; k < k1; ++k) {
          U16x32 raw;
          std::memcpy(&raw, row[k] + c, sizeof(raw));
          const U16x32 lo = __builtin_shufflevector(zero, raw, PARADIFF_UNPACK(0));
          const U16x32 hi = __builtin_shufflevector(zero, raw, PARADIFF_UNPACK(4));
          F32x16 w0, w1;
          std::memcpy(&w0, &lo, 64);
          std::memcpy(&w1, &hi, 64);
          for (int m = 0; m < NR; ++m) {
            const float xv = x[m * ldx + k];
            acc[m][0] += xv * w0;
            acc[m][1] += xv * w1;
          }
        }
      }
      for (int m = 0; m < NR; ++m)
        for (int v = 0; v < V; ++v)
          if (v < 2 * groups) std::memcpy(&sums[m][c + 16 * v], &acc[m][v], 64);
    }
    for (int64_t k = k0; k < k1; ++k) {  // the last columns, fewer than 32
      const uint16_t* p = row[k];
      for (int m = 0; m < NR; ++m) {
        const float xv = x[m * ldx + k];
        for (int64_t c = vec_len; c < len; ++c) sums[m][c] += xv * widen_one(p[c]);
      }
    }
  }
  for (int m = 0; m < NR; ++m) {
    float* out = y + m * ldy;
    for (int64_t c = 0; c < vec_len; c += 32)
      for (int64_t e = 0; e < 32; ++e) out[c + column_of(e)] = sums[m][c + e];
    std::copy(sums[m] + vec_len, sums[m] + len, out + vec_len);
  }
}

#undef PARADIFF_UNPACK
#undef PARADIFF_UNPACK_LANE

}  // namespace

void Bf16StoredWeights::multiply_rows(const float* x, int64_t rows, float* y) const {
  PARADIFF_CHECK(layout_.readable, "bf16-stored weights: multiply_rows on an unreadable layout");
  const Layout l = layout_;
  const auto* w = reinterpret_cast<const uint16_t*>(storage_.get());
  const int64_t tile = l.bn > kRun ? kMaxTile : kRun;
  const int64_t tiles_per_block = (std::min(l.bn, l.n) + tile - 1) / tile;
  const int64_t blocks = (l.n + l.bn - 1) / l.bn;
  const int64_t tiles = blocks * tiles_per_block;
  for (int64_t r0 = 0; r0 < rows; r0 += kRowsPerPass) {
    const int nr = static_cast<int>(std::min(kRowsPerPass, rows - r0));
#pragma omp parallel for schedule(static) if (tiles > 1 && l.k * l.n > (1 << 15))
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t block = t / tiles_per_block;
      const int64_t j0 = (t % tiles_per_block) * tile;  // first column within the block
      const int64_t n0 = block * l.bn + j0;
      if (n0 >= l.n || j0 >= l.bn) continue;
      const int64_t len = std::min({tile, l.bn - j0, l.n - n0});
      // Where each row of the tile starts (no division per row in the loops).
      std::vector<const uint16_t*>& row = rows_buffer();
      row.resize(static_cast<size_t>(l.k));
      const uint16_t* base = w + block * l.sn + j0;
      for (int64_t k = 0, kb = 0, kr = 0; k < l.k; ++k) {
        row[k] = base + kb * l.sk + kr * l.bn;
        if (++kr == l.bk) kr = 0, ++kb;
      }
      const float* xr = x + r0 * l.k;
      float* yr = y + r0 * l.n + n0;
      switch (nr) {
        case 1:
          tile_product<1>(xr, l.k, l.k, row.data(), len, yr, l.n);
          break;
        case 2:
          tile_product<2>(xr, l.k, l.k, row.data(), len, yr, l.n);
          break;
        case 3:
          tile_product<3>(xr, l.k, l.k, row.data(), len, yr, l.n);
          break;
        default:
          tile_product<4>(xr, l.k, l.k, row.data(), len, yr, l.n);
          break;
      }
    }
  }
}

Bf16StoredWeights Bf16StoredWeights::from_packed(const dnnl::memory& packed) {
  const size_t bytes = storage_bytes(packed.get_desc());
  auto tensor =
      std::make_shared<Tensor>(Tensor::empty({static_cast<int64_t>((bytes + 1) / 2)}, DType::BF16));
  narrow_into(packed, static_cast<std::byte*>(tensor->raw_data()));
  std::shared_ptr<const std::byte> storage(tensor,
                                           static_cast<const std::byte*>(tensor->raw_data()));
  return Bf16StoredWeights(packed.get_desc(), std::move(storage));
}

dnnl::memory Bf16StoredWeights::widened() const {
  PARADIFF_CHECK(defined(), "bf16-stored weights used before they were set");
  const size_t bytes = desc_.get_size();
  Tensor& buffer = scratch();
  if (buffer.nbytes() < bytes)
    buffer = Tensor::empty({static_cast<int64_t>((bytes + 3) / 4)}, DType::F32);
  widen_bf16(reinterpret_cast<const bf16*>(storage_.get()), buffer.data<float>(),
             static_cast<int64_t>(bytes / 4));
  return dnnl::memory(desc_, onednn_engine(), buffer.raw_data());
}

size_t widening_scratch_bytes() {
  return scratch().nbytes();
}

}  // namespace paradiff::kernels::cpu
