// Shared pieces of the benchmarks: the reference rates every figure is compared with, measured
// in the same run (a plain oneDNN GEMM, an FMA loop), and a timing loop.
#pragma once

#include <cstdint>
#include <functional>

#include "paradiff/core/dtype.h"

namespace paradiff::bench {

// Median seconds of `fn` over repetitions: at least `min_reps` runs and at least `min_seconds` of
// total time, after one warm-up run.
// Prints "machine: <CPU model from /proc/cpuinfo>, <logical CPUs> cpu(s) | isa: ..." (the
// instruction-set level the kernels run at, core/cpu_isa.h): the first line of every benchmark.
void print_machine_header();

double time_median(const std::function<void()>& fn, int min_reps = 3, double min_seconds = 0.5);

// time(a) / time(b) over `pairs` (at least 1) alternating runs: a, then b, then a, ... A host
// whose speed drifts over minutes moves both halves of a pair together, so the median ratio is
// steadier than two medians timed apart. `lowest` and `highest` give the spread. Unlike
// time_median it runs no warm-up: call it once both have run (flux_transformer_bench times its
// table first).
struct PairedRatio {
  double median = 0, lowest = 0, highest = 0;
};
PairedRatio time_ratio_in_pairs(const std::function<void()>& a, const std::function<void()>& b,
                                int pairs);

// GFLOP/s of a standalone oneDNN matmul (M x K) * (K x N) -> f32, operands in `dtype`, weights in
// oneDNN's preferred (prepacked) layout, with the current OpenMP thread count. This is the
// "oneDNN standalone rate" that paradiff's linear and attention are measured against.
double onednn_matmul_gflops(int64_t m, int64_t k, int64_t n, DType dtype);

// GFLOP/s of a register-resident FMA loop on every thread: the arithmetic peak of the active
// instruction-set level (core/cpu_isa.h, PARADIFF_MAX_ISA): f32 FMAs on zmm at avx512 and above,
// on ymm at avx2 (scalar multiply-adds below); for bf16, vdpbf16ps (2 flops per bf16 pair
// product-add) only where bf16 is native (avx512_bf16, amx). Where it is not, bf16 is computed
// in fp32, so the bf16 peak is the fp32 one.
double fma_peak_gflops(DType dtype);

// Whether fma_peak_gflops(dtype) bounds what paradiff's kernels reach in that arithmetic: not for
// bf16 at the amx level, whose GEMMs (oneDNN on the tile unit) and oneDNN attention outrun any
// vector loop; the benchmarks print "n/a" there, and the GEMM rate is the limit to read.
bool peak_applies(DType dtype);

}  // namespace paradiff::bench
