// Internals of kernels::attention: the packed K/V layout of one head, the tile kernel that
// attends a few query rows to a packed head, and the table of tile implementations, one per
// instruction-set level, that cpu/attention.cc picks from at run time (core/cpu_isa.h):
//
//   level        f32 inputs                bf16 inputs
//   avx512_bf16  avx512 f32 tiles          bf16 pairs, vdpbf16ps    (attention_tile_avx512_bf16.cc)
//   avx512       avx512 f32 tiles          widened to f32 tiles     (attention_tile_avx512.cc)
//   avx2         avx2 f32 tiles            widened to f32 tiles     (attention_tile_avx2.cc)
//   portable     scalar f32                scalar bf16 pairs        (attention_tile_portable.cc)
//
// (amx selects the avx512_bf16 tiles.) Each variant file is compiled for its level
// (cmake/KernelIsa.cmake) and keeps what it defines in its own namespace
// (attention_detail::isa_<level>) or with internal linkage; this header therefore holds only
// types, constants and declarations, never an inline function a variant file could call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "paradiff/core/cpu_isa.h"
#include "paradiff/core/dtype.h"

namespace paradiff {
class Tensor;
}

namespace paradiff::kernels::attention_detail {

// Keys per packed K/V block: one block's K^T (64 keys x D) and V are reused by every query row
// of a tile while they sit in L1/L2, and 64 keys are 4 AVX-512 (8 AVX2) vectors of scores per row.
inline constexpr int64_t kKvBlock = 64;
// Query rows per tile: a tile's rows share every K/V block load from L3/L2. Measured on an Intel
// Xeon (family 6 model 167), f32, 1 thread, 4352 tokens: 192 rows gave 1.15x the rate of 48 at
// avx512 and 1.10x at avx2 (one head's packed K/V, 4.4 MiB there, streams from L3 once a tile).
inline constexpr int64_t kTileRows = 192;

// Where one head's packed K and V live and how big each block is (sizes in elements of `packed`).
//   f32:        K block [dq][64]          V block [64][dv]
//   bf16 pairs: K block [dq/2][64][2]     V block [32][dv][2]
// The f32 layout serves f32 inputs and bf16 inputs computed in f32 (the packing widens them).
// The bf16 layout puts the two elements that one vdpbf16ps lane multiplies and adds next to
// each other: consecutive d for Q K^T, consecutive keys for P V. Padding (keys past Skv, d past D)
// is zero, so padded products add nothing.
struct HeadLayout {
  DType dtype;     // of q, k, v
  DType packed;    // of the packed K/V and of the tile's copy of Q: F32, or BF16 (pairs)
  int64_t skv;     // keys
  int64_t d;       // head dim
  int64_t blocks;  // ceil(skv / kKvBlock)
  int64_t dq;      // reduction length of Q K^T: d, rounded up to even for bf16 pairs
  int64_t dv;      // d rounded up to 16 (one AVX-512 vector)
  int64_t k_block;
  int64_t v_block;
  size_t elem_size;  // of `packed`
};

// bf16_pairs: bf16 inputs packed as bf16 pairs (native bf16 dot products) rather than widened to
// f32. Ignored for f32 inputs.
HeadLayout make_head_layout(DType dtype, int64_t skv, int64_t d, bool bf16_pairs);
size_t head_bytes(const HeadLayout& layout);

// The packed storage of one head is head_bytes() in all, K blocks first, then V blocks.
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

// The scratch of a tile, carved from TileArgs::scratch. Shared by every implementation so that
// loading Q, the final normalisation and the write-out are common code.
struct TileScratch {
  void* q;       // [kTileRows][dq] in the packed dtype, pre-negated, zero-padded
  void* p;       // [kTileRows][kKvBlock] scores / probabilities of one block (packed dtype)
                 // (the avx2 kernel uses the first rows only, one register tile's worth)
  float* o;      // [kTileRows][dv] unnormalised output
  float* m;      // [kTileRows] running max of scale * log2(e) * score (the log2 domain)
  float* l;      // [kTileRows][16] running sum of exp, in up to 16 partial lanes
  float* alpha;  // [kTileRows] rescale factor of the current block
};
TileScratch carve_scratch(const HeadLayout& layout, std::byte* scratch);

// Copies the tile's query rows into scratch.q in the packed dtype (widening bf16 to f32 for the
// f32 layout), negated if asked, zero-padded to dq.
void load_q_tile(const TileArgs& args, const TileScratch& s);

// Divides each row of o by its sum, writes it to args.out in its dtype, and writes the lse.
// l_total[r] is the full sum of row r.
void write_tile(const TileArgs& args, const TileScratch& s, const float* l_total);

// Packs K/V block `block` of one head into the layout's packed form. k and v point at key 0 of
// the head (dtype of the layout); consecutive keys are `stride` elements apart.
using PackFn = void (*)(const HeadLayout& layout, const void* k, const void* v, int64_t stride,
                        int64_t block, void* packed_head);
using TileFn = void (*)(const TileArgs& args);

// One implementation of the tiles: what the packing and the tile kernel of each layout are.
struct TileKernels {
  CpuIsa level;           // the level it is written for
  std::string_view f32;   // what runs for f32 inputs, e.g. "avx512 f32"
  std::string_view bf16;  // what runs for bf16 inputs, e.g. "avx2 f32 (bf16 widened)"
  bool bf16_pairs;        // bf16 inputs use the bf16 pair layout (else widened to f32)
  PackFn pack_f32;        // f32 layout, from f32 or bf16 inputs
  TileFn tile_f32;
  PackFn pack_bf16_pairs;  // null where bf16_pairs is false
  TileFn tile_bf16_pairs;
};

// The implementation for a level (one written for it or for the nearest level below), and the one
// for active_cpu_isa(), which kernels::attention uses.
const TileKernels& tile_kernels_for(CpuIsa level);
const TileKernels& tile_kernels();

// kernels::attention's CPU body with a given implementation (tests run every level the CPU has).
// The inputs are checked by kernels::attention; scale is final (already 1/sqrt(D) if it was 0).
void attend(const TileKernels& kernels, const Tensor& q, const Tensor& k, const Tensor& v,
            Tensor& out, Tensor* lse, float scale);

// Each variant's entry points (defined in attention_tile_<level>.cc, each in its own namespace).
namespace isa_portable {
void pack_f32(const HeadLayout& layout, const void* k, const void* v, int64_t stride, int64_t block,
              void* packed_head);
void tile_f32(const TileArgs& args);
void pack_bf16_pairs(const HeadLayout& layout, const void* k, const void* v, int64_t stride,
                     int64_t block, void* packed_head);
void tile_bf16_pairs(const TileArgs& args);
}  // namespace isa_portable
#if defined(__x86_64__)
namespace isa_avx2 {
void pack_f32(const HeadLayout& layout, const void* k, const void* v, int64_t stride, int64_t block,
              void* packed_head);
void tile_f32(const TileArgs& args);
}  // namespace isa_avx2
namespace isa_avx512 {
void pack_f32(const HeadLayout& layout, const void* k, const void* v, int64_t stride, int64_t block,
              void* packed_head);
void tile_f32(const TileArgs& args);
}  // namespace isa_avx512
namespace isa_avx512_bf16 {
void pack_bf16_pairs(const HeadLayout& layout, const void* k, const void* v, int64_t stride,
                     int64_t block, void* packed_head);
void tile_bf16_pairs(const TileArgs& args);
}  // namespace isa_avx512_bf16
#endif

}  // namespace paradiff::kernels::attention_detail
