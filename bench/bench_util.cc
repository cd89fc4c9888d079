#include "bench_util.h"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "paradiff/core/cpu_isa.h"
#include "paradiff/core/fma_loops.h"
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

PairedRatio time_ratio_in_pairs(const std::function<void()>& a, const std::function<void()>& b,
                                int pairs) {
  std::vector<double> ratios;  // no warm-up here: the caller has run both already
  for (int i = 0; i < std::max(pairs, 1); ++i) {
    Stopwatch first;
    a();
    const double a_seconds = first.seconds();
    Stopwatch second;
    b();
    ratios.push_back(a_seconds / second.seconds());
  }
  std::sort(ratios.begin(), ratios.end());
  return {ratios[ratios.size() / 2], ratios.front(), ratios.back()};
}

double onednn_matmul_gflops(int64_t m, int64_t k, int64_t n, DType dtype) {
  const double seconds = time_median(kernels::cpu::onednn_reference_matmul(m, k, n, dtype));
  return 2.0 * m * k * n / seconds / 1e9;
}

namespace {

constexpr int64_t kFmaIters = 10'000'000;

// The loop of the active level (core/fma_loops.h) and the flops one pass of it performs.
struct FmaLoop {
  float (*run)(int64_t iters);
  double flops;
};

FmaLoop fma_loop_for(DType dtype) {
  const CpuIsa isa = active_cpu_isa();
  constexpr auto iters = static_cast<double>(kFmaIters);
#if defined(__x86_64__)
  if (dtype == DType::BF16 && native_bf16())
    return {avx512_bf16_dot_loop, kBf16DotLoopFlops * iters};
  if (isa >= CpuIsa::Avx512) return {avx512_fma_loop, kAvx512FmaLoopFlops * iters};
  if (isa >= CpuIsa::Avx2) return {avx2_fma_loop, kAvx2FmaLoopFlops * iters};
#else
  (void)dtype;
  (void)isa;
#endif
  return {scalar_fma_loop, kScalarFmaLoopFlops * iters};
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
    sink = loop.run(kFmaIters);
  }
  (void)sink;
  return loop.flops * threads / sw.seconds() / 1e9;
}

bool peak_applies(DType dtype) {
  return !(dtype == DType::BF16 && active_cpu_isa() == CpuIsa::Amx);
}

}  // namespace paradiff::bench
