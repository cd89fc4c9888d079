// Fused attention at a FLUX-like size, against limits measured in the same run: the oneDNN GEMM
// rate for a GEMM of the same FLOPs, and the FMA-loop peak, both in the arithmetic the tiles
// actually use (f32 for bf16 inputs where the active level has no native bf16: PARADIFF_MAX_ISA
// selects the level). Prints which tile implementation runs; prints, never asserts.
//
//   attention FLOPs = 4 * B * H * S * S * D    (Q K^T and P V, 2 flops per multiply-add)
//   reference GEMM  = (M x K) * (K x N) with M=4096, K=1024, N=2048: 2*M*K*N equals the attention
//                     FLOPs at B=1, H=2, S=4096, D=128, in a shape where oneDNN is compute bound.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "paradiff/core/cpu_isa.h"
#include "paradiff/core/tensor.h"
#include "paradiff/core/timer.h"
#include "paradiff/kernels/attention.h"
#include "paradiff/kernels/cpu/attention_tile.h"

namespace {

using paradiff::DType;
using paradiff::Tensor;

Tensor random_tensor(const paradiff::Shape& shape, DType dtype, std::mt19937& rng) {
  Tensor f = Tensor::empty(shape, DType::F32);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  float* p = f.data<float>();
  for (int64_t i = 0; i < f.numel(); ++i) p[i] = dist(rng);
  return f.to(dtype);
}

}  // namespace

int main() {
  paradiff::bench::print_machine_header();
  constexpr int64_t kB = 1, kH = 2, kS = 4096, kD = 128;
  constexpr int64_t kM = 4096, kK = 1024, kN = 2048;
  const double flops = 4.0 * kB * kH * kS * kS * kD;
  static_assert(2 * kM * kK * kN == 4 * kB * kH * kS * kS * kD);

  std::mt19937 rng(1234);
  std::printf("attention B=%lld H=%lld Sq=Skv=%lld D=%lld: %.2f GFLOP per call\n",
              static_cast<long long>(kB), static_cast<long long>(kH), static_cast<long long>(kS),
              static_cast<long long>(kD), flops / 1e9);
  std::printf(
      "reference GEMM: oneDNN matmul M=%lld K=%lld N=%lld (same FLOPs, dtype of the math)\n",
      static_cast<long long>(kM), static_cast<long long>(kK), static_cast<long long>(kN));
  std::printf("attention tiles: f32 inputs: %s; bf16 inputs: %s\n",
              std::string(paradiff::kernels::attention_tile_implementation(DType::F32)).c_str(),
              std::string(paradiff::kernels::attention_tile_implementation(DType::BF16)).c_str());
  std::printf("kernels::attention runs: f32 inputs: %s; bf16 inputs: %s\n\n",
              std::string(paradiff::kernels::attention_implementation(DType::F32)).c_str(),
              std::string(paradiff::kernels::attention_implementation(DType::BF16)).c_str());
  std::printf("%-5s %-5s %7s %9s %9s %10s %9s %10s %9s\n", "dtype", "math", "threads", "ms",
              "GFLOP/s", "GEMM GF/s", "vs GEMM", "peak GF/s", "vs peak");
  for (DType dtype : {DType::F32, DType::BF16}) {
    // The arithmetic the tiles use, which the GEMM and the peak are measured in.
    const DType math = dtype == DType::BF16 && !paradiff::native_bf16() ? DType::F32 : dtype;
    const paradiff::Shape shape{kB, kS, kH, kD};
    const Tensor q = random_tensor(shape, dtype, rng);
    const Tensor k = random_tensor(shape, dtype, rng);
    const Tensor v = random_tensor(shape, dtype, rng);
    Tensor out = Tensor::empty(shape, dtype);
    Tensor lse = Tensor::empty({kB, kS, kH}, DType::F32);
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      // The GEMM runs before and after the attention and the higher rate is the reference: on a
      // shared machine that keeps the ratio conservative.
      const double gemm_before = paradiff::bench::onednn_matmul_gflops(kM, kK, kN, math);
      const double peak = paradiff::bench::fma_peak_gflops(math);
      const double seconds = paradiff::bench::time_median(
          [&] { paradiff::kernels::attention(q, k, v, out, &lse); }, 5, 1.0);
      const double gemm =
          std::max(gemm_before, paradiff::bench::onednn_matmul_gflops(kM, kK, kN, math));
      const double gflops = flops / seconds / 1e9;
      char share[16] = "n/a";  // bf16 on AMX: the vector loop is no bound (bench_util.h)
      if (paradiff::bench::peak_applies(math))
        std::snprintf(share, sizeof share, "%.2f", gflops / peak);
      std::printf("%-5s %-5s %7d %9.2f %9.1f %10.1f %9.2f %10.1f %9s\n",
                  std::string(paradiff::dtype_name(dtype)).c_str(),
                  std::string(paradiff::dtype_name(math)).c_str(), threads, seconds * 1e3, gflops,
                  gemm, gflops / gemm, peak, share);
      std::fflush(stdout);
    }
  }

  // bf16 against f32 on the same values (rounded to bf16 for both), timed alternately, best of
  // kRounds each: a shared machine's load then weighs on both alike, and the ratio is the figure
  // to compare across levels (bf16 widened to f32 should cost what f32 costs).
  constexpr int kRounds = 7;
  std::printf("\nbf16 / f32 time on the same values, alternating runs, best of %d each\n", kRounds);
  std::printf("%7s %9s %9s %9s\n", "threads", "f32 ms", "bf16 ms", "bf16/f32");
  const paradiff::Shape shape{kB, kS, kH, kD};
  const Tensor q16 = random_tensor(shape, DType::BF16, rng);
  const Tensor k16 = random_tensor(shape, DType::BF16, rng);
  const Tensor v16 = random_tensor(shape, DType::BF16, rng);
  const Tensor q32 = q16.to(DType::F32), k32 = k16.to(DType::F32), v32 = v16.to(DType::F32);
  Tensor out32 = Tensor::empty(shape, DType::F32), out16 = Tensor::empty(shape, DType::BF16);
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    double best32 = std::numeric_limits<double>::infinity(), best16 = best32;
    paradiff::kernels::attention(q32, k32, v32, out32);  // warm-up
    paradiff::kernels::attention(q16, k16, v16, out16);
    for (int round = 0; round < kRounds; ++round) {
      paradiff::Stopwatch f32_time;
      paradiff::kernels::attention(q32, k32, v32, out32);
      best32 = std::min(best32, f32_time.seconds());
      paradiff::Stopwatch bf16_time;
      paradiff::kernels::attention(q16, k16, v16, out16);
      best16 = std::min(best16, bf16_time.seconds());
    }
    std::printf("%7d %9.2f %9.2f %9.2f\n", threads, best32 * 1e3, best16 * 1e3, best16 / best32);
    std::fflush(stdout);
  }

  // Every SIMD tile implementation this CPU can run, whatever PARADIFF_MAX_ISA says, on the same
  // values, round-robin, best of kRounds each: the levels compared under the same load.
  namespace detail = paradiff::kernels::attention_detail;
  using paradiff::CpuIsa;
  std::vector<CpuIsa> levels;
  for (CpuIsa level : {CpuIsa::Avx2, CpuIsa::Avx512, CpuIsa::Avx512Bf16})
    if (level <= paradiff::hardware_cpu_isa()) levels.push_back(level);
  const int threads = 2;
  omp_set_num_threads(threads);
  std::printf("\nevery level's tiles, %d threads, round-robin, best of %d each\n", threads,
              kRounds);
  std::printf("%-12s %-5s %-30s %9s %9s %9s\n", "level", "dtype", "tiles", "ms", "GFLOP/s",
              "bf16/f32");
  const float scale = 1.0f / std::sqrt(static_cast<float>(kD));
  std::vector<double> best(levels.size() * 2, std::numeric_limits<double>::infinity());
  for (int round = 0; round <= kRounds; ++round) {  // round 0 warms up
    for (size_t i = 0; i < levels.size(); ++i) {
      const detail::TileKernels& kernels = detail::tile_kernels_for(levels[i]);
      paradiff::Stopwatch f32_time;
      detail::attend(kernels, q32, k32, v32, out32, nullptr, scale);
      if (round > 0) best[2 * i] = std::min(best[2 * i], f32_time.seconds());
      paradiff::Stopwatch bf16_time;
      detail::attend(kernels, q16, k16, v16, out16, nullptr, scale);
      if (round > 0) best[2 * i + 1] = std::min(best[2 * i + 1], bf16_time.seconds());
    }
  }
  for (size_t i = 0; i < levels.size(); ++i) {
    const detail::TileKernels& kernels = detail::tile_kernels_for(levels[i]);
    const std::string level(paradiff::cpu_isa_name(levels[i]));
    std::printf("%-12s %-5s %-30s %9.2f %9.1f\n", level.c_str(), "f32",
                std::string(kernels.f32).c_str(), best[2 * i] * 1e3, flops / best[2 * i] / 1e9);
    std::printf("%-12s %-5s %-30s %9.2f %9.1f %9.2f\n", level.c_str(), "bf16",
                std::string(kernels.bf16).c_str(), best[2 * i + 1] * 1e3,
                flops / best[2 * i + 1] / 1e9, best[2 * i + 1] / best[2 * i]);
  }
  return 0;
}
