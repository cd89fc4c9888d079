#include "bench_util.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "paradiff/core/cpu_isa.h"
#include "paradiff/core/timer.h"
#include "paradiff/kernels/cpu/onednn_reference.h"

namespace paradiff::bench {

void print_machine_header() {
  std::string model = "unknown CPU";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  std::printf("machine: %s, %u cpu(s) | %s\n", model.c_str(), std::thread::hardware_concurrency(),
              cpu_isa_summary().c_str());
}

double time_median(const std::function<void()>& fn, int min_reps, double min_seconds) {
  fn();  // warm-up: page faults, primitive creation, caches
  std::vector<double> times;
  Stopwatch total;
  while (static_cast<int>(times.size()) < min_reps || total.seconds() < min_seconds) {
    Stopwatch once;
    fn();
    times.push_back(once.seconds());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

double onednn_matmul_gflops(int64_t m, int64_t k, int64_t n, DType dtype) {
  const double seconds = time_median(kernels::cpu::onednn_reference_matmul(m, k, n, dtype));
  return 2.0 * m * k * n / seconds / 1e9;
}

namespace {

constexpr int kFmaIters = 10'000'000;
// Independent accumulators: enough to cover the FMA latency on every pipe (24 of the 32 zmm; 12
// of the 16 ymm at AVX2).
constexpr int kChains = 24;
constexpr int kChainsAvx2 = 12;

// Each loop is compiled for its own level (target attributes), whatever the build targets, and
// sums its accumulators through memory (GCC 12's reduce intrinsics trip -Wuninitialized).
__attribute__((noinline)) float fma_loop_scalar() {
  float acc[8];
  for (int i = 0; i < 8; ++i) acc[i] = 0.001f * i;
  for (int it = 0; it < kFmaIters; ++it)
    for (float& a : acc) a = a * 0.999f + 0.0001f;
  float s = 0;
  for (float a : acc) s += a;
  return s;
}

__attribute__((noinline, target("avx2,fma"))) float fma_loop_avx2() {
  __m256 acc[kChainsAvx2];
  for (int i = 0; i < kChainsAvx2; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.0001f);
  for (int it = 0; it < kFmaIters; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < kChainsAvx2; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  alignas(32) float lanes[8];
  float s = 0;
  for (int i = 0; i < kChainsAvx2; ++i) {
    _mm256_store_ps(lanes, acc[i]);
    for (float x : lanes) s += x;
  }
  return s;
}

__attribute__((noinline, target("avx512f"))) float fma_loop_avx512() {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.0001f);
  for (int it = 0; it < kFmaIters; ++it)
#pragma GCC unroll 24
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  alignas(64) float lanes[16];
  float s = 0;
  for (int i = 0; i < kChains; ++i) {
    _mm512_store_ps(lanes, acc[i]);
    for (float x : lanes) s += x;
  }
  return s;
}

__attribute__((noinline, target("avx512f,avx512bf16"))) float fma_loop_bf16() {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.01f), _mm512_set1_ps(0.02f));
  for (int it = 0; it < kFmaIters; ++it)
#pragma GCC unroll 24
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, a);
  alignas(64) float lanes[16];
  float s = 0;
  for (int i = 0; i < kChains; ++i) {
    _mm512_store_ps(lanes, acc[i]);
    for (float x : lanes) s += x;
  }
  return s;
}

// The loop of the active level and the flops one pass of it performs (per thread).
struct FmaLoop {
  float (*run)();
  double flops;
};

FmaLoop fma_loop_for(DType dtype) {
  const CpuIsa isa = active_cpu_isa();
  constexpr double iters = kFmaIters;
  // Per instruction: lanes x 2 flops (FMA), or 16 lanes x 2 pairs x 2 flops (bf16 dot).
  if (dtype == DType::BF16 && native_bf16()) return {fma_loop_bf16, 64.0 * kChains * iters};
  if (isa >= CpuIsa::Avx512) return {fma_loop_avx512, 32.0 * kChains * iters};
  if (isa >= CpuIsa::Avx2) return {fma_loop_avx2, 16.0 * kChainsAvx2 * iters};
  return {fma_loop_scalar, 2.0 * 8 * iters};
}
}  // namespace

double fma_peak_gflops(DType dtype) {
  const FmaLoop loop = fma_loop_for(dtype);
  volatile float sink = 0;
  Stopwatch sw;
  int threads = 1;
#pragma omp parallel
  {
#pragma omp single
    threads = omp_get_num_threads();
    sink = loop.run();
  }
  (void)sink;
  return loop.flops * threads / sw.seconds() / 1e9;
}

}  // namespace paradiff::bench
