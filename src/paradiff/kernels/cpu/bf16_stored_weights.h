// Weights stored in bf16 but laid out as oneDNN's fp32 prepacked weights (GemmMode::
// Bf16StoredF32): half the memory of fp32, and widening them back is one contiguous
// bf16 -> f32 pass (a 16-bit shift per element, exact) into a per-thread scratch buffer that the
// fp32 primitive then reads as its prepacked weights. The layout is a permutation of the values
// plus zero padding, so narrowing the packed fp32 copy of bf16-rounded weights is exact.
// For a few rows (M = 1, 2: the timestep and modulation layers; short prompts), where a GEMM only
// streams its weights, multiply_rows reads the bf16 storage directly instead (direct_rows()).
#pragma once

#include <dnnl.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "paradiff/core/dtype.h"

namespace paradiff::kernels::cpu {

// dst[i] = src[i] for `count` elements (exact); on the OpenMP threads when large.
void widen_bf16(const bf16* src, float* dst, int64_t count);

class Bf16StoredWeights {
 public:
  Bf16StoredWeights() = default;
  // Bytes of storage for weights in the fp32 layout `f32_desc`.
  static size_t storage_bytes(const dnnl::memory::desc& f32_desc);
  // Writes `packed` (fp32, every value bf16-representable) as bf16 into `dst`
  // (storage_bytes(packed.get_desc()) bytes): the low 16 bits are dropped, exact for such values.
  static void narrow_into(const dnnl::memory& packed, std::byte* dst);
  // Storage already filled by narrow_into for the fp32 layout `f32_desc`.
  Bf16StoredWeights(const dnnl::memory::desc& f32_desc, std::shared_ptr<const std::byte> storage);
  // Fresh storage (tensor memory, counted in peak bytes) holding `packed` narrowed.
  static Bf16StoredWeights from_packed(const dnnl::memory& packed);

  bool defined() const { return storage_ != nullptr; }
  const dnnl::memory::desc& f32_desc() const { return desc_; }
  size_t bytes() const { return storage_bytes(desc_); }
  // The weights in fp32, widened into the calling thread's scratch buffer (grown as needed, kept
  // for later calls): valid until this thread's next widened() call on any weights.
  dnnl::memory widened() const;

  // Matmul weights [K, N] only. Whether multiply_rows reads this layout (a plain row-major one, or
  // blocks of bk rows x bn columns with the columns innermost, as oneDNN packs fp32 matmul
  // weights).
  bool rows_readable() const { return layout_.readable; }
  // Up to this many rows multiply_rows beats widening and an fp32 GEMM: it reads the 2-byte
  // weights once per pass of the level's tile height (8 rows with AVX-512, 4 with AVX2), while
  // widening moves 2 + 4 bytes per weight and the fp32 GEMM reads 4 more. Four passes.
  static int64_t direct_rows();
  // y[m, n] = sum_k x[m, k] W[k, n] for m < rows in fp32 arithmetic, straight from the bf16
  // storage; x: rows x K, y: rows x N (overwritten), both f32 row-major. rows_readable() only.
  void multiply_rows(const float* x, int64_t rows, float* y) const;

 private:
  // Element (k, n) lies at (k / bk) sk + (n / bn) sn + (k % bk) bn + n % bn.
  struct Layout {
    bool readable = false;
    int64_t k = 0, n = 0, bk = 1, bn = 1, sk = 0, sn = 0;
  };
  static Layout read_layout(const dnnl::memory::desc& desc);

  dnnl::memory::desc desc_;
  std::shared_ptr<const std::byte> storage_;
  Layout layout_;
};

// Bytes of the calling thread's widening scratch buffer (0 before its first use).
size_t widening_scratch_bytes();

}  // namespace paradiff::kernels::cpu
