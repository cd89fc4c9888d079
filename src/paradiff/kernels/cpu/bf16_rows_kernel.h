// The per-level entry points of the bf16-stored weights' loops (cpu/bf16_rows_body.h, compiled per
// level by paradiff_isa_kernel), picked at run time by bf16_stored_weights.cc from
// active_cpu_isa().
#pragma once

#include <cstdint>
#include <string_view>

namespace paradiff::kernels {

#define PARADIFF_BF16_ROWS_ENTRY_POINTS                                                       \
  /* dst[i] = src[i] << 16 for i in [begin, end) (bf16 to f32 bit patterns) */                \
  void widen(const uint16_t* src, uint32_t* dst, int64_t begin, int64_t end);                 \
  /* rows one rows_tile call takes at most */                                                 \
  int rows_per_tile();                                                                        \
  /* y[m, j] = sum_k x[m, k] row[k][j] for m < rows (1..rows_per_tile()), j < len (<= 512) */ \
  void rows_tile(int rows, const float* x, int64_t ldx, int64_t k_count,                      \
                 const uint16_t* const* row, int64_t len, float* y, int64_t ldy);

namespace isa_avx2 {
PARADIFF_BF16_ROWS_ENTRY_POINTS
}
namespace isa_avx512 {
PARADIFF_BF16_ROWS_ENTRY_POINTS
}
namespace isa_portable {
PARADIFF_BF16_ROWS_ENTRY_POINTS
}

#undef PARADIFF_BF16_ROWS_ENTRY_POINTS

}  // namespace paradiff::kernels

namespace paradiff::kernels::cpu {

// The level whose loops bf16-stored weights run at ("avx512", "avx2" or "portable"): a test hook
// and a line for benchmarks.
std::string_view bf16_rows_kernel_level();

}  // namespace paradiff::kernels::cpu
