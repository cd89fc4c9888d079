// Internals of kernels::attention: the packed K/V layout of one head and the tile kernel that
// attends a few query rows to a packed head. cpu/attention.cc packs and spreads tiles over
// threads; attention_tile_avx512.cc and attention_tile_portable.cc each implement the tile
// kernels for what the compiler targets.
#pragma once

#include <cstddef>
#include <cstdint>

#include "paradiff/core/dtype.h"

namespace paradiff::kernels::attention_detail {

// Keys per packed K/V block: one block's K^T (64 keys x D) and V are reused by every query row
// of a tile while they sit in L1/L2, and 64 keys are 4 AVX-512 vectors of scores per row.
inline constexpr int64_t kKvBlock = 64;
// Query rows per tile: a tile's rows share every K/V block load from L3/L2.
inline constexpr int64_t kTileRows = 48;

// Where one head's packed K and V live and how big each block is (sizes in elements of dtype).
//   f32:  K block [dq][64]          V block [64][dv]
//   bf16: K block [dq/2][64][2]     V block [32][dv][2]
// The bf16 layouts put the two elements that one vdpbf16ps lane multiplies and adds next to
// each other: consecutive d for Q K^T, consecutive keys for P V. Padding (keys past Skv, d past D)
// is zero, so padded products add nothing.
struct HeadLayout {
  DType dtype;     // of q, k, v
  int64_t skv;     // keys
  int64_t d;       // head dim
  int64_t blocks;  // ceil(skv / kKvBlock)
  int64_t dq;      // reduction length of Q K^T: d, rounded up to even for bf16
  int64_t dv;      // d rounded up to 16 (one vector)
  int64_t k_block;
  int64_t v_block;
  size_t elem_size;

  size_t head_bytes() const {
    return static_cast<size_t>(blocks * (k_block + v_block)) * elem_size;
  }
};

HeadLayout make_head_layout(DType dtype, int64_t skv, int64_t d);

// Packs K/V block `block` of one head. k and v point at key 0 of the head; consecutive keys are
// `stride` elements apart. packed_head is the head's packed storage (head_bytes() in all, K
// blocks first, then V blocks: see packed_k / packed_v). Implemented next to the tile kernels
// (one per instruction set), the layout above being the contract between the two.
void pack_block(const HeadLayout& layout, const void* k, const void* v, int64_t stride,
                int64_t block, void* packed_head);
const void* packed_k(const HeadLayout& layout, const void* packed_head, int64_t block);
const void* packed_v(const HeadLayout& layout, const void* packed_head, int64_t block);

// One tile: `rows` (1..kTileRows) consecutive query rows of one head against a whole packed head.
struct TileArgs {
  const HeadLayout* layout;
  const void* q;     // first query row (dtype of the layout)
  int64_t q_stride;  // elements between consecutive query rows
  int64_t rows;
  bool negate_q;  // a negative scale is applied as -Q times |scale| (exact in both dtypes)
  float scale;    // > 0
  const void* packed_head;
  void* out;  // first output row
  DType out_dtype;
  int64_t out_stride;
  float* lse;  // null, or the first row's lse
  int64_t lse_stride;
  std::byte* scratch;  // tile_scratch_bytes(layout), 64-byte aligned, private to the thread
};

size_t tile_scratch_bytes(const HeadLayout& layout);

// The scratch of a tile, carved from TileArgs::scratch. Shared by both implementations so that
// the final normalisation and the write-out are common code.
struct TileScratch {
  void* q;       // [kTileRows][dq] in the input dtype, pre-negated, zero-padded
  void* p;       // [kTileRows][kKvBlock] probabilities of one block (bf16 for bf16 inputs)
                 // (the AVX-512 kernels use the first rows only, one register tile's worth)
  float* o;      // [kTileRows][dv] unnormalised output
  float* m;      // [kTileRows] running max of scale * log2(e) * score (the log2 domain)
  float* l;      // [kTileRows][16] running sum of exp, in 16 partial lanes
  float* alpha;  // [kTileRows] rescale factor of the current block
};
TileScratch carve_scratch(const HeadLayout& layout, std::byte* scratch);

// Copies the tile's query rows into scratch.q (negated if asked, zero-padded to dq).
void load_q_tile(const TileArgs& args, const TileScratch& s);

// Divides each row of o by its sum, writes it to args.out in its dtype, and writes the lse.
// l_total[r] is the full sum of row r.
void write_tile(const TileArgs& args, const TileScratch& s, const float* l_total);

// The tile kernels (one implementation is compiled in, per instruction set).
void attend_tile_f32(const TileArgs& args);
void attend_tile_bf16(const TileArgs& args);

}  // namespace paradiff::kernels::attention_detail
