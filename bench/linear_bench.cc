// linear(x, W, b) in fp32 and bf16, 1 and 2 threads, on three FLUX shapes: M=4096, K=N=3072 (one
// projection of the image tokens), M=512 (the same for the text tokens) and M=2, K=3072,
// N=18432 (a double block's adaLN modulation for batch 2, bound by reading the weights). GFLOP/s,
// the ratio to a standalone oneDNN GEMM in the dtype the layer really computes in and to the FMA
// peak of that arithmetic, both measured in the same run, and bf16's time against fp32's. Each bf16
// row names its path (kernels/ gemm_mode.h): "bf16" (native) or "bf16 stored, f32 computed". Prints
// figures; asserts nothing.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <random>
#include <string>

#include "bench_util.h"
#include "paradiff/core/timer.h"
#include "paradiff/kernels/linear.h"

using namespace paradiff;

namespace {

// Seconds of CPU time used by the whole process (every thread): time a loaded machine gives to
// other processes is not counted.
double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

// fp32 CPU time / bf16 CPU time (the process's, all threads) from `pairs` alternating runs, the
// fastest of each: time a loaded machine gives to other processes is not counted, and both see
// the same conditions, so this ratio is steadier than two separate wall-clock medians.
double interleaved_speedup(const std::function<void()>& f32, const std::function<void()>& bf16,
                           int pairs) {
  f32();
  bf16();
  double best_f32 = 1e30, best_bf16 = 1e30;
  for (int i = 0; i < pairs; ++i) {
    double t0 = cpu_seconds();
    f32();
    best_f32 = std::min(best_f32, cpu_seconds() - t0);
    t0 = cpu_seconds();
    bf16();
    best_bf16 = std::min(best_bf16, cpu_seconds() - t0);
  }
  return best_f32 / best_bf16;
}

void run_shape(int64_t m, int64_t k, int64_t n) {
  const double flops = 2.0 * m * k * n;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1, 1);
  Tensor w = Tensor::empty({n, k}, DType::F32), x = Tensor::empty({m, k}, DType::F32);
  Tensor b = Tensor::empty({n}, DType::F32);
  for (Tensor* t : {&w, &x, &b})
    for (int64_t i = 0; i < t->numel(); ++i) t->data<float>()[i] = dist(rng);

  std::printf("\nlinear M=%lld K=%lld N=%lld (bias, f32 output)\n", (long long)m, (long long)k,
              (long long)n);
  std::printf("%-5s %-26s %-3s %-24s %9s %9s %9s %8s %8s\n", "dtype", "path (weights MB)", "thr",
              "case", "ms", "GFLOP/s", "vs oneDNN", "vs peak", "vs f32");
  const kernels::Linear f32(w, b, DType::F32), bf16(w, b, DType::BF16);
  Tensor y = Tensor::empty({m, n}, DType::F32);
  const Tensor x_b = x.to(DType::BF16);
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    double f32_seconds = 0;
    for (const kernels::Linear* lin : {&f32, &bf16}) {
      // The reference rates are those of the arithmetic the layer runs.
      const DType arith = kernels::gemm_operand_dtype(lin->mode());
      const double peak = bench::fma_peak_gflops(arith);
      const double onednn = bench::onednn_matmul_gflops(m, k, n, arith);
      const std::string path = std::string(kernels::gemm_mode_name(lin->mode())) + " (" +
                               std::to_string(lin->weight_bytes() >> 20) + ")";
      const std::string dtype(dtype_name(lin->compute_dtype()));
      auto row = [&](const char* name, double seconds) {
        const double rate = flops / seconds / 1e9;
        char share[16] = "n/a";
        if (bench::peak_applies(arith))
          std::snprintf(share, sizeof share, "%.1f%%", 100 * rate / peak);
        std::printf("%-5s %-26s %-3d %-24s %9.2f %9.1f %8.1f%% %8s", dtype.c_str(), path.c_str(),
                    threads, name, seconds * 1e3, rate, 100 * rate / onednn, share);
        if (f32_seconds > 0 && std::string(name).starts_with("paradiff"))
          std::printf(" %7.2fx", f32_seconds / seconds);
        std::printf("\n");
      };
      row("oneDNN standalone", flops / (onednn * 1e9));
      const double seconds = bench::time_median([&] { lin->forward(x, y); });
      row(lin == &f32 ? "paradiff linear" : "paradiff linear, f32 in", seconds);
      if (lin == &f32) f32_seconds = seconds;
      if (lin == &bf16)
        row("paradiff linear, bf16 in", bench::time_median([&] { lin->forward(x_b, y); }));
    }
    const int pairs = m >= 1024 ? 5 : 30;
    std::printf(
        "bf16 vs f32, %d threads, fastest of %d alternating runs (CPU time): %.2fx (f32 in), "
        "%.2fx (bf16 in)\n",
        threads, pairs,
        interleaved_speedup([&] { f32.forward(x, y); }, [&] { bf16.forward(x, y); }, pairs),
        interleaved_speedup([&] { f32.forward(x, y); }, [&] { bf16.forward(x_b, y); }, pairs));
  }
}

}  // namespace

int main(int argc, char** argv) {
  paradiff::bench::print_machine_header();
  std::printf(
      "vs f32: fp32 layer's time / this row's time, same thread count (> 1: bf16 faster)\n");
  if (argc == 4) {  // linear_bench M K N: that shape only
    run_shape(std::atoll(argv[1]), std::atoll(argv[2]), std::atoll(argv[3]));
    return 0;
  }
  run_shape(4096, 3072, 3072);
  run_shape(512, 3072, 3072);  // the text stream's projections (512 T5 tokens)
  run_shape(2, 3072, 18432);
  return 0;
}
