// The bf16-stored weights' loops for AVX2 (cmake/KernelIsa.cmake compiles this file for that
// level; core/cpu_isa.h picks it at run time in bf16_stored_weights.cc).
#include <cstdint>
#include <cstring>

#include "paradiff/kernels/cpu/bf16_rows_kernel.h"

#if defined(__x86_64__)
namespace paradiff::kernels::cpu::isa_avx2 {

#define PARADIFF_BF16_ROWS_VECTOR_BYTES 32  // ymm
#include "paradiff/kernels/cpu/bf16_rows_body.h"

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

}  // namespace paradiff::kernels::cpu::isa_avx2
#endif  // __x86_64__
