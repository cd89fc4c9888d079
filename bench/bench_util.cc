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
// Horizontal sum through memory: GCC 12's _mm512_reduce_add_ps trips -Wuninitialized (GCC bug
// 105593), which -Werror turns into a build failure.
float horizontal_sum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float s = 0;
  for (float x : lanes) s += x;
  return s;
}

constexpr int kFmaIters = 10'000'000;
// Independent accumulators: enough to cover the FMA latency on every pipe (24 of the 32 zmm).
constexpr int kChains = 24;

__attribute__((noinline)) float fma_loop_f32() {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.0001f);
  for (int it = 0; it < kFmaIters; ++it)
#pragma GCC unroll 24
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  return horizontal_sum(s);
}

#if defined(__AVX512BF16__)
__attribute__((noinline)) float fma_loop_bf16() {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.01f), _mm512_set1_ps(0.02f));
  for (int it = 0; it < kFmaIters; ++it)
#pragma GCC unroll 24
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, a);
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  return horizontal_sum(s);
}
#endif
}  // namespace

double fma_peak_gflops(DType dtype) {
  volatile float sink = 0;
  Stopwatch sw;
  int threads = 1;
#pragma omp parallel
  {
#pragma omp single
    threads = omp_get_num_threads();
#if defined(__AVX512BF16__)
    sink = dtype == DType::BF16 ? fma_loop_bf16() : fma_loop_f32();
#else
    sink = fma_loop_f32();
#endif
  }
  (void)sink;
  // Per instruction: 16 lanes x 2 flops (f32 FMA) or 16 lanes x 2 pairs x 2 flops (bf16 dot).
  const double flops_per_instr = dtype == DType::BF16 ? 64.0 : 32.0;
  return flops_per_instr * kChains * kFmaIters * threads / sw.seconds() / 1e9;
}

}  // namespace paradiff::bench
