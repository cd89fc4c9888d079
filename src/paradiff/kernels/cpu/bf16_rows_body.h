// The loops of bf16-stored weights (cpu/bf16_stored_weights.h), a level body: compiled once per
// instruction-set level inside namespace isa_<level> (cmake/KernelIsa.cmake, paradiff_isa_kernel;
// the entry points at the end are declared in cpu/bf16_rows_kernel.h). Everything here has
// internal linkage or sits in that namespace, and uses raw loops and GCC/Clang vector types only
// (no standard-library template), so no definition is shared between the levels.

// dst[i] = src[i] << 16 for i in [begin, end): bf16 bit patterns to f32 ones (exact).
inline void widen_range(const uint16_t* src, uint32_t* dst, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) dst[i] = static_cast<uint32_t>(src[i]) << 16;
}

namespace {

// Columns of one tile at most (see multiply_rows in bf16_stored_weights.cc).
constexpr int64_t kMaxTile = 512;

inline float widen_one(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// Vectors of PARADIFF_BF16_ROWS_VECTOR_BYTES: 32 (ymm) where the level has AVX2 but not AVX-512
// (wider GCC vectors would be split into scalar code there), else 64 (zmm).
#if defined(__AVX2__) && !defined(__AVX512F__)
#define PARADIFF_BF16_ROWS_VECTOR_BYTES 32
#else
#define PARADIFF_BF16_ROWS_VECTOR_BYTES 64
#endif
constexpr int kVectorBytes = PARADIFF_BF16_ROWS_VECTOR_BYTES;
typedef float F32xV __attribute__((vector_size(PARADIFF_BF16_ROWS_VECTOR_BYTES)));
typedef uint16_t U16xV __attribute__((vector_size(PARADIFF_BF16_ROWS_VECTOR_BYTES)));
constexpr int64_t kFloats = kVectorBytes / 4;   // floats per vector
constexpr int64_t kGroup = 2 * kFloats;         // bf16 values per load: one group of columns
constexpr int kU16 = static_cast<int>(kGroup);  // shufflevector's index of the second operand

// kGroup bf16 values (one load) as two vectors of floats, by interleaving them with zeros within
// each 128-bit lane (vpunpcklwd / vpunpckhwd): a bf16 is the high half of its float. The columns
// come out permuted: `lo` holds columns {0-3, 8-11, ...}, `hi` {4-7, 12-15, ...} (column_of);
// the sums are put back in order once, at the end.
#define PARADIFF_UNPACK_LANE(l, o)                                                 \
  8 * l + o, kU16 + 8 * l + o, 8 * l + o + 1, kU16 + 8 * l + o + 1, 8 * l + o + 2, \
      kU16 + 8 * l + o + 2, 8 * l + o + 3, kU16 + 8 * l + o + 3
#if PARADIFF_BF16_ROWS_VECTOR_BYTES == 32
#define PARADIFF_UNPACK(o) PARADIFF_UNPACK_LANE(0, o), PARADIFF_UNPACK_LANE(1, o)
#else
#define PARADIFF_UNPACK(o)                                                            \
  PARADIFF_UNPACK_LANE(0, o), PARADIFF_UNPACK_LANE(1, o), PARADIFF_UNPACK_LANE(2, o), \
      PARADIFF_UNPACK_LANE(3, o)
#endif

// The column (within its group) of element e of the pair of vectors (e < kFloats: lo).
constexpr int64_t column_of(int64_t e) {
  return e < kFloats ? 8 * (e / 4) + e % 4 : 8 * ((e - kFloats) / 4) + 4 + (e - kFloats) % 4;
}

// y[m, j] = sum_k x[m, k] w(k, j) for m < NR, j < len, where w(k, j) = row[k][j]: `row[k]` is
// the bf16 run of row k of this tile. K goes in chunks whose weights stay in L1/L2 while every
// column group of the tile passes over them; within a chunk the NR x V accumulators live in
// registers (at least 4 independent FMA chains, at most 16).
template <int NR>
void tile_product(const float* x, int64_t ldx, int64_t k_count, const uint16_t* const* row,
                  int64_t len, float* y, int64_t ldy) {
  constexpr int G = NR == 1 ? 2 : 1;  // groups of columns per pass
  constexpr int V = 2 * G;            // vectors per row
  constexpr int64_t kWidth = kGroup * G;
  constexpr int64_t kChunkRows = 128;
  alignas(64) float sums[NR][kMaxTile] = {};  // vector part in the unpack order
  const int64_t vec_len = len / kGroup * kGroup;
  const int64_t wide_len = len / kWidth * kWidth;
  const U16xV zero = {};
  for (int64_t k0 = 0; k0 < k_count; k0 += kChunkRows) {
    const int64_t k1 = k0 + kChunkRows < k_count ? k0 + kChunkRows : k_count;
    for (int64_t c = 0; c < vec_len; c += kWidth) {
      const int groups = c < wide_len ? G : 1;  // a last single group
      F32xV acc[NR][V];
      for (int m = 0; m < NR; ++m)
        for (int v = 0; v < V; ++v)
          if (v < 2 * groups) std::memcpy(&acc[m][v], &sums[m][c + kFloats * v], kVectorBytes);
      if (groups == G) {
        for (int64_t k = k0; k < k1; ++k) {
          const uint16_t* p = row[k] + c;
          F32xV w[V];
#pragma GCC unroll 2
          for (int g = 0; g < G; ++g) {
            U16xV raw;
            std::memcpy(&raw, p + kGroup * g, sizeof(raw));
            const U16xV lo = __builtin_shufflevector(zero, raw, PARADIFF_UNPACK(0));
            const U16xV hi = __builtin_shufflevector(zero, raw, PARADIFF_UNPACK(4));
            std::memcpy(&w[2 * g], &lo, kVectorBytes);
            std::memcpy(&w[2 * g + 1], &hi, kVectorBytes);
          }
#pragma GCC unroll 8
          for (int m = 0; m < NR; ++m) {
            const float xv = x[m * ldx + k];
#pragma GCC unroll 4
            for (int v = 0; v < V; ++v) acc[m][v] += xv * w[v];
          }
        }
      } else {
        for (int64_t k = k0; k < k1; ++k) {
          U16xV raw;
          std::memcpy(&raw, row[k] + c, sizeof(raw));
          const U16xV lo = __builtin_shufflevector(zero, raw, PARADIFF_UNPACK(0));
          const U16xV hi = __builtin_shufflevector(zero, raw, PARADIFF_UNPACK(4));
          F32xV w0, w1;
          std::memcpy(&w0, &lo, kVectorBytes);
          std::memcpy(&w1, &hi, kVectorBytes);
#pragma GCC unroll 8
          for (int m = 0; m < NR; ++m) {
            const float xv = x[m * ldx + k];
            acc[m][0] += xv * w0;
            acc[m][1] += xv * w1;
          }
        }
      }
      for (int m = 0; m < NR; ++m)
        for (int v = 0; v < V; ++v)
          if (v < 2 * groups) std::memcpy(&sums[m][c + kFloats * v], &acc[m][v], kVectorBytes);
    }
    for (int64_t k = k0; k < k1; ++k) {  // the last columns, fewer than kGroup
      const uint16_t* p = row[k];
      for (int m = 0; m < NR; ++m) {
        const float xv = x[m * ldx + k];
        for (int64_t c = vec_len; c < len; ++c) sums[m][c] += xv * widen_one(p[c]);
      }
    }
  }
  for (int m = 0; m < NR; ++m) {
    float* out = y + m * ldy;
    for (int64_t c = 0; c < vec_len; c += kGroup)
      for (int64_t e = 0; e < kGroup; ++e) out[c + column_of(e)] = sums[m][c + e];
    for (int64_t c = vec_len; c < len; ++c) out[c] = sums[m][c];
  }
}

#undef PARADIFF_UNPACK
#undef PARADIFF_UNPACK_LANE
#undef PARADIFF_BF16_ROWS_VECTOR_BYTES

}  // namespace

// Rows one tile_rows call takes at most: 8 with zmm (16 accumulators of 32 registers), 4 with
// ymm (8 of 16).
inline int max_rows() {
  return kVectorBytes == 64 ? 8 : 4;
}

// y[m, j] = sum_k x[m, k] row[k][j] for m < rows (1..max_rows()), j < len (<= 512), in fp32: one
// tile of Bf16StoredWeights::multiply_rows. x: rows x k_count (row stride ldx); y: row stride ldy.
inline void tile_rows(int rows, const float* x, int64_t ldx, int64_t k_count,
                      const uint16_t* const* row, int64_t len, float* y, int64_t ldy) {
  switch (rows) {
    case 1:
      return tile_product<1>(x, ldx, k_count, row, len, y, ldy);
    case 2:
      return tile_product<2>(x, ldx, k_count, row, len, y, ldy);
    case 3:
      return tile_product<3>(x, ldx, k_count, row, len, y, ldy);
    case 4:
      return tile_product<4>(x, ldx, k_count, row, len, y, ldy);
    default:
      break;
  }
  if constexpr (kVectorBytes == 64) {
    switch (rows) {
      case 5:
        return tile_product<5>(x, ldx, k_count, row, len, y, ldy);
      case 6:
        return tile_product<6>(x, ldx, k_count, row, len, y, ldy);
      case 7:
        return tile_product<7>(x, ldx, k_count, row, len, y, ldy);
      default:
        return tile_product<8>(x, ldx, k_count, row, len, y, ldy);
    }
  }
}

// The entry points (cpu/bf16_rows_kernel.h).
void widen(const uint16_t* src, uint32_t* dst, int64_t begin, int64_t end) {
  widen_range(src, dst, begin, end);
}

int rows_per_tile() {
  return max_rows();
}

void rows_tile(int rows, const float* x, int64_t ldx, int64_t k_count, const uint16_t* const* row,
               int64_t len, float* y, int64_t ldy) {
  tile_rows(rows, x, ldx, k_count, row, len, y, ldy);
}
