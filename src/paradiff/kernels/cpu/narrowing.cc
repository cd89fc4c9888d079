// kernels/narrowing.h on the CPU: narrowing_body.h's loop for the active instruction-set level,
// in chunks over the OpenMP threads.
#include "paradiff/kernels/narrowing.h"

#include <algorithm>

#include "paradiff/kernels/cpu/isa_dispatch.h"

namespace paradiff::kernels {

PARADIFF_ISA_DECLARE(void round_fp8_e4m3_f32(const float* in, float* out, int64_t count))
PARADIFF_ISA_DECLARE(void round_fp8_e4m3_bf16(const uint16_t* in, uint16_t* out, int64_t count))
PARADIFF_ISA_DECLARE(void fp8_e4m3_codes_f32(const float* in, uint8_t* out, int64_t count))
PARADIFF_ISA_DECLARE(void fp8_e4m3_codes_bf16(const uint16_t* in, uint8_t* out, int64_t count))
PARADIFF_ISA_DECLARE(void round_bf16_f32(const float* in, float* out, int64_t count))

namespace {

// Elements per OpenMP work item: large enough to stream, small enough to balance.
constexpr int64_t kChunk = int64_t{1} << 16;

template <typename In, typename Out>
void in_chunks(void (*loop)(const In*, Out*, int64_t), const In* in, Out* out, int64_t count) {
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kChunk;
    loop(in + begin, out + begin, std::min(kChunk, count - begin));
  }
}

}  // namespace

void round_to_fp8_e4m3_values(const float* in, float* out, int64_t count) {
  in_chunks(PARADIFF_ISA_SELECT_NO_BF16(round_fp8_e4m3_f32), in, out, count);
}

void round_to_fp8_e4m3_values(const bf16* in, bf16* out, int64_t count) {
  in_chunks(PARADIFF_ISA_SELECT_NO_BF16(round_fp8_e4m3_bf16), reinterpret_cast<const uint16_t*>(in),
            reinterpret_cast<uint16_t*>(out), count);
}

void fp8_e4m3_codes(const float* in, uint8_t* out, int64_t count) {
  in_chunks(PARADIFF_ISA_SELECT_NO_BF16(fp8_e4m3_codes_f32), in, out, count);
}

void fp8_e4m3_codes(const bf16* in, uint8_t* out, int64_t count) {
  in_chunks(PARADIFF_ISA_SELECT_NO_BF16(fp8_e4m3_codes_bf16), reinterpret_cast<const uint16_t*>(in),
            out, count);
}

void round_to_bf16_values(const float* in, float* out, int64_t count) {
  in_chunks(PARADIFF_ISA_SELECT_NO_BF16(round_bf16_f32), in, out, count);
}

}  // namespace paradiff::kernels
