// linear(x, W, b) at M=4096, K=N=3072 (one FLUX-sized projection), fp32 and bf16, 1 and 2
// threads: GFLOP/s and the ratio to a standalone oneDNN GEMM and to the FMA peak, both measured
// in the same run. Prints figures; asserts nothing.
#include <omp.h>

#include <cstdio>
#include <random>

#include "bench_util.h"
#include "paradiff/kernels/linear.h"

using namespace paradiff;

int main() {
  paradiff::bench::print_machine_header();
  const int64_t m = 4096, k = 3072, n = 3072;
  const double flops = 2.0 * m * k * n;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1, 1);
  Tensor w = Tensor::empty({n, k}, DType::F32), x = Tensor::empty({m, k}, DType::F32);
  Tensor b = Tensor::empty({n}, DType::F32);
  for (Tensor* t : {&w, &x, &b})
    for (int64_t i = 0; i < t->numel(); ++i) t->data<float>()[i] = dist(rng);

  std::printf("linear M=%lld K=%lld N=%lld (bias, f32 output)\n", (long long)m, (long long)k,
              (long long)n);
  std::printf("%-6s %-7s %-22s %10s %10s %12s %10s\n", "dtype", "threads", "case", "ms", "GFLOP/s",
              "vs oneDNN", "vs peak");
  for (DType dtype : {DType::F32, DType::BF16}) {
    kernels::Linear lin(w, b, dtype);
    const Tensor x_in = x.to(dtype);
    Tensor y = Tensor::empty({m, n}, DType::F32);
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      const double peak = bench::fma_peak_gflops(dtype);
      const double onednn = bench::onednn_matmul_gflops(m, k, n, dtype);
      auto row = [&](const char* name, double seconds) {
        const double rate = flops / seconds / 1e9;
        std::printf("%-6s %-7d %-22s %10.2f %10.1f %11.1f%% %9.1f%%\n",
                    std::string(dtype_name(dtype)).c_str(), threads, name, seconds * 1e3, rate,
                    100 * rate / onednn, 100 * rate / peak);
      };
      row("oneDNN standalone", flops / (onednn * 1e9));
      row("paradiff linear", bench::time_median([&] { lin.forward(x_in, y); }));
      if (dtype == DType::BF16)
        row("  (f32 input, converted)", bench::time_median([&] { lin.forward(x, y); }));
      std::printf("%-6s %-7d %-22s %10s %10.1f\n", std::string(dtype_name(dtype)).c_str(), threads,
                  "FMA-loop peak", "", peak);
    }
  }
  return 0;
}
