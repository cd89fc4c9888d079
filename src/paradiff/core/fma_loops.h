// Register-resident loops of independent multiply-adds: the arithmetic rate limits of the vector
// units, with nothing to load or store. They serve the bf16 decision (core/cpu_isa.cc compares
// vdpbf16ps with fp32 FMAs) and the benchmarks' peak figures (bench/bench_util.cc). Each loop is
// compiled for its own instruction set (target attributes) whatever the build targets; calling
// one the CPU lacks is an illegal instruction, so callers check hardware_cpu_isa() first. Each
// returns the sum of its accumulators, so that nothing is optimised away.
#pragma once

#include <cstdint>

namespace paradiff {

// Independent accumulators: enough to cover the latency on every pipe (24 of the 32 zmm; 12 of
// the 16 ymm at AVX2; 8 scalars).
inline constexpr int kFmaLoopChains = 24;
inline constexpr int kFmaLoopChainsAvx2 = 12;
inline constexpr int kFmaLoopChainsScalar = 8;

// Flops per iteration of each loop (a multiply-add is 2 flops; a vdpbf16ps lane multiplies and
// adds 2 pairs).
inline constexpr double kScalarFmaLoopFlops = 2.0 * kFmaLoopChainsScalar;
inline constexpr double kAvx2FmaLoopFlops = 2.0 * 8 * kFmaLoopChainsAvx2;
inline constexpr double kAvx512FmaLoopFlops = 2.0 * 16 * kFmaLoopChains;
inline constexpr double kBf16DotLoopFlops = 4.0 * 16 * kFmaLoopChains;

float scalar_fma_loop(int64_t iters);
#if defined(__x86_64__)
float avx2_fma_loop(int64_t iters);         // vfmadd231ps on ymm
float avx512_fma_loop(int64_t iters);       // vfmadd231ps on zmm
float avx512_bf16_dot_loop(int64_t iters);  // vdpbf16ps on zmm
#endif

}  // namespace paradiff
