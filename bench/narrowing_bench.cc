// Narrowing weights at load time (kernels/narrowing.h): values per second of the bulk roundings to
// float8 e4m3 and bf16, against the scalar loops they replaced (the single-threaded
// round_to_fp8_e4m3 loop of round_to_storage, the per-element fp8_e4m3_bits loop on the threads,
// and bf16 through Tensor::to), on 16M random weights, with 1 thread and with every thread.
// Prints figures; asserts nothing.
#include <omp.h>

#include <cstdio>
#include <random>
#include <vector>

#include "bench_util.h"
#include "paradiff/core/tensor.h"
#include "paradiff/kernels/fp8_e4m3.h"
#include "paradiff/kernels/narrowing.h"

using namespace paradiff;

namespace {

constexpr int64_t kCount = int64_t{1} << 24;

void report(const char* what, int threads, const std::function<void()>& fn) {
  const double s = bench::time_median(fn, 3, 0.3);
  std::printf("%-52s threads %d: %8.1f M values/s\n", what, threads, kCount / s / 1e6);
}

}  // namespace

int main() {
  bench::print_machine_header();
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 0.05f);  // weight-like magnitudes
  Tensor w = Tensor::empty({kCount}, DType::F32);
  for (int64_t i = 0; i < kCount; ++i) w.data<float>()[i] = dist(rng);
  const Tensor wb = w.to(DType::BF16);
  Tensor out = Tensor::empty({kCount}, DType::F32);
  Tensor out_bf16 = Tensor::empty({kCount}, DType::BF16);
  std::vector<uint8_t> codes(kCount);
  const float* in = w.data<float>();
  float* o = out.data<float>();
  const int all = omp_get_max_threads();
  for (int threads : {1, all}) {
    if (threads == all && all == 1) break;
    omp_set_num_threads(threads);
    report("fp8 round, scalar loop (before)", threads, [&] {
      for (int64_t i = 0; i < kCount; ++i) o[i] = kernels::round_to_fp8_e4m3(in[i]);
    });
    report("fp8 round, round_to_fp8_e4m3_values (after)", threads,
           [&] { kernels::round_to_fp8_e4m3_values(in, o, kCount); });
    report("fp8 round from bf16, round_to_fp8_e4m3_values", threads, [&] {
      kernels::round_to_fp8_e4m3_values(wb.data<bf16>(), out_bf16.data<bf16>(), kCount);
    });
    report("fp8 codes, fp8_e4m3_bits on the threads (before)", threads, [&] {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < kCount; ++i) codes[i] = kernels::fp8_e4m3_bits(in[i]);
    });
    report("fp8 codes, fp8_e4m3_codes (after)", threads,
           [&] { kernels::fp8_e4m3_codes(in, codes.data(), kCount); });
    report("bf16 round, to(BF16).to(F32) (before)", threads,
           [&] { out = w.to(DType::BF16).to(DType::F32); });
    o = out.data<float>();
    report("bf16 round, round_to_bf16_values (after)", threads,
           [&] { kernels::round_to_bf16_values(in, o, kCount); });
  }
  return 0;
}
