// Could a hand-written AVX-512 fp32 GEMM beat oneDNN's on the transformers' Linear shapes?
// (docs/benchmarks.md, "FLOP efficiency": oneDNN's fp32 GEMM runs at 68-74% of the FMA-loop
// peak.) Two measurements, both against limits taken in the same run; prints figures, asserts
// nothing, and is not used by paradiff (Linear stays on oneDNN).
//
// 1. Register tiles alone: R rows x V zmm of accumulators (6x64, 8x48, 12x32, 14x32), a K loop
//    that broadcasts A and loads a packed B panel, on L1/L2-resident operands (B: one kc x 16V
//    panel, reused by mc/R row panels of A). GFLOP/s and the fraction of the FMA-loop peak
//    (bench_util.h), each run alternating with the FMA loop, the best of several of each, all in
//    process CPU time.
// 2. The 14x32 tile in a blocked GEMM, C = A W^T + bias as Linear needs it: W packed once into
//    32-column panels (K x 32 floats each), A copied per (kMc x kKc) block into 14-row panels,
//    C in kMc x kNc blocks, the next weight slice and C tile prefetched while the current ones
//    are in use, threads over row (or column) ranges. Against oneDNN's fp32 matmul with
//    prepacked weights (kernels/cpu/onednn_reference.h), in this process, alternating, the
//    fastest of GEMM_TILE_BENCH_PAIRS (default 3) runs of each in process CPU time divided by
//    the thread count (time the shared machine gives to other processes is not counted);
//    GFLOP/s of all threads together, and oneDNN's time over ours (> 1: ours is faster). Also the
//    GEMM's largest error against a double-precision reference on a small odd shape, so that the
//    figures are those of a correct GEMM.
//
//   gemm_tile_bench                 both parts, the FLUX / Qwen-Image Linear shapes
//   gemm_tile_bench tiles           part 1 only
//   gemm_tile_bench M K N [M K N]   part 2 on the given shapes only
//
// Needs AVX-512 (prints a line and stops otherwise).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <random>
#include <string_view>
#include <utility>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "bench_util.h"
#include "paradiff/core/cpu_isa.h"
#include "paradiff/core/threads.h"
#include "paradiff/kernels/cpu/onednn_reference.h"

using namespace paradiff;

#if defined(__x86_64__)

#define GEMM_AVX512 __attribute__((target("avx512f")))

namespace {

// acc[R][V] += a-panel (kc groups of `a_stride` floats, R used) x b-panel (kc rows of 16V
// floats); then C (row stride ldc) = acc, or += when load_c. The next row panel (at a + kc *
// a_stride) is prefetched into L1 as this one streams.
template <int R, int V>
GEMM_AVX512 void tile(int64_t kc, const float* __restrict a, int64_t a_stride,
                      const float* __restrict b, float* c, int64_t ldc, bool load_c) {
  __m512 acc[R][V];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t kk = 0; kk < kc; ++kk) {
    __m512 bv[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
    __builtin_prefetch(a + kc * a_stride, 0, 3);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(a[r]);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
    a += a_stride;
    b += 16 * V;
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      float* p = c + r * ldc + 16 * v;
      _mm512_storeu_ps(p, load_c ? _mm512_add_ps(acc[r][v], _mm512_loadu_ps(p)) : acc[r][v]);
    }
}

double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

// bench_util's FMA-loop peak (1 thread), rescaled from wall-clock to process CPU time: on the
// shared machine the wall clock also counts time given to other processes.
double fma_peak_cpu_time() {
  const auto w0 = std::chrono::steady_clock::now();
  const double c0 = cpu_seconds();
  const double wall_rate = bench::fma_peak_gflops(DType::F32);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  return wall_rate * wall / (cpu_seconds() - c0);
}

// ---- Part 1: the tiles alone.

template <int R, int V>
void tile_rate(int64_t kc, int64_t mc) {
  constexpr int64_t nr = 16 * V;
  const int64_t panels = mc / R;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> a(panels * R * kc + R * kc), b(kc * nr), c(panels * R * nr);
  for (auto* v : {&a, &b})
    for (float& x : *v) x = dist(rng);
  const double flops = 2.0 * panels * R * nr * kc;
  const int reps = std::max<int>(1, static_cast<int>(2e8 / flops));
  double best = 0, peak = 0;
  for (int round = 0; round < 5; ++round) {
    peak = std::max(peak, fma_peak_cpu_time());
    const double t0 = cpu_seconds();
    for (int i = 0; i < reps; ++i)
      for (int64_t p = 0; p < panels; ++p)
        tile<R, V>(kc, a.data() + p * R * kc, R, b.data(), c.data() + p * R * nr, nr, i > 0);
    const double s = cpu_seconds() - t0;
    best = std::max(best, reps * flops / s / 1e9);
  }
  std::printf(
      "  %2dx%-3lld  kc %4lld  B panel %5.1f KiB  A %6.1f KiB   %6.1f GF/s  %5.1f%% of %6.1f\n", R,
      static_cast<long long>(nr), static_cast<long long>(kc), kc * nr * 4 / 1024.0,
      panels * R * kc * 4 / 1024.0, best, 100 * best / peak, peak);
  std::fflush(stdout);
}

void part1() {
  std::printf(
      "\n1. register tiles on L1/L2-resident operands, 1 thread (best of 5 in CPU time; "
      "the FMA-loop peak: best of the 5 measured between the runs)\n");
  set_num_threads(1);
  for (int64_t kc : {128, 256}) {
    tile_rate<6, 4>(kc, 6 * 64);
    tile_rate<8, 3>(kc, 8 * 48);
    tile_rate<12, 2>(kc, 12 * 32);
    tile_rate<14, 2>(kc, 14 * 28);
  }
}

// ---- Part 2: the blocked GEMM.

constexpr int kRows = 14;            // tile rows
constexpr int64_t kPanel = 32;       // tile columns (2 zmm): the weight panel width
constexpr int64_t kKc = 256;         // K slice: a weight slice is kKc x kPanel floats = 32 KiB (L1)
constexpr int64_t kMc = 14 * kRows;  // rows per A block (kMc x kKc floats = 196 KiB, L2)
constexpr int64_t kNc = 1024;        // columns per C block (kMc x kNc floats = 784 KiB, L2)

// W [n, k] -> panels of kPanel columns, each k rows of kPanel floats (n a multiple of kPanel).
std::vector<float> pack_weights(const std::vector<float>& w, int64_t n, int64_t k) {
  std::vector<float> packed(n * k);
  for (int64_t p = 0; p < n / kPanel; ++p)
    for (int64_t kk = 0; kk < k; ++kk)
      for (int64_t j = 0; j < kPanel; ++j)
        packed[(p * k + kk) * kPanel + j] = w[(p * kPanel + j) * k + kk];
  return packed;
}

// Rows [0, rows) x columns [0, kc) of A into panels of kRows rows (zero past `rows`).
void pack_rows(const float* a, int64_t lda, int64_t rows, int64_t kc, float* dst) {
  for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
    float* panel = dst + r0 * kc;
    const int64_t count = std::min<int64_t>(kRows, rows - r0);
    for (int64_t kk = 0; kk < kc; ++kk)
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r)
        panel[kk * kRows + r] = r < count ? a[(r0 + r) * lda + kk] : 0.0f;
  }
}

// Rows [m0, m1) x columns [n0, n1) of C = A W^T + bias. C has its rows padded to whole tiles
// (the bench allocates it so); n a multiple of kPanel.
GEMM_AVX512 void gemm_part(const float* a, int64_t k, const float* packed, int64_t n,
                           const float* bias, float* c, int64_t m0, int64_t m1, int64_t n0,
                           int64_t n1, float* abuf) {
  for (int64_t jc = n0; jc < n1; jc += kNc) {
    const int64_t nc = std::min(kNc, n1 - jc);
    for (int64_t ic = m0; ic < m1; ic += kMc) {
      const int64_t mc = std::min(kMc, m1 - ic);
      const int64_t tiles = (mc + kRows - 1) / kRows;
      for (int64_t pc = 0; pc < k; pc += kKc) {
        const int64_t kc = std::min(kKc, k - pc);
        pack_rows(a + ic * k + pc, k, mc, kc, abuf);
        for (int64_t jr = jc; jr < jc + nc; jr += kPanel) {
          const float* b = packed + jr * k + pc * kPanel;
          // The next weight slice into L2, a part per tile.
          const bool more = jr + kPanel < jc + nc || pc + kKc < k;
          const char* next = reinterpret_cast<const char*>(
              jr + kPanel < jc + nc ? b + k * kPanel : packed + jc * k + (pc + kKc) * kPanel);
          const int64_t next_bytes = more ? kc * kPanel * 4 : 0;
          const int64_t step = (next_bytes / 64 + tiles - 1) / tiles * 64;
          int64_t fetched = 0;
          for (int64_t t = 0; t < tiles; ++t) {
            for (const int64_t end = fetched + step; fetched < end && fetched < next_bytes;
                 fetched += 64)
              __builtin_prefetch(next + fetched, 0, 2);
            float* ct = c + (ic + t * kRows) * n + jr;
            if (t + 1 < tiles)  // the next C tile into L1
              for (int r = 0; r < kRows; ++r) {
                __builtin_prefetch(ct + (kRows + r) * n, 1, 3);
                __builtin_prefetch(ct + (kRows + r) * n + 16, 1, 3);
              }
            tile<kRows, 2>(kc, abuf + t * kRows * kc, kRows, b, ct, n, pc > 0);
            if (pc + kc >= k && bias != nullptr)
              for (int r = 0; r < kRows; ++r)
                for (int v = 0; v < 2; ++v) {
                  float* p = ct + r * n + 16 * v;
                  _mm512_storeu_ps(
                      p, _mm512_add_ps(_mm512_loadu_ps(p), _mm512_loadu_ps(bias + jr + 16 * v)));
                }
          }
        }
      }
    }
  }
}

// Per-thread A-block buffers, allocated once (outside the timed runs).
std::vector<std::vector<float>>& row_buffers() {
  static std::vector<std::vector<float>> buffers;
  return buffers;
}

void gemm(const float* a, int64_t m, int64_t k, const float* packed, int64_t n, const float* bias,
          float* c) {
  const int64_t tiles = (m + kRows - 1) / kRows, panels = n / kPanel;
  auto& buffers = row_buffers();
  if (static_cast<int>(buffers.size()) < num_threads()) buffers.resize(num_threads());
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    auto& buf = buffers[t];
    if (buf.empty()) buf.resize(kMc * kKc);
    // Rows when every thread gets a whole A block, else columns.
    int64_t m0 = 0, m1 = tiles * kRows, n0 = 0, n1 = n;
    if (tiles * kRows >= threads * kMc || panels < threads) {
      m0 = tiles * t / threads * kRows;
      m1 = tiles * (t + 1) / threads * kRows;
    } else {
      n0 = panels * t / threads * kPanel;
      n1 = panels * (t + 1) / threads * kPanel;
    }
    if (m0 < m1 && n0 < n1) gemm_part(a, k, packed, n, bias, c, m0, m1, n0, n1, buf.data());
  }
}

struct Operands {
  int64_t m, k, n, padded_m;
  std::vector<float> a, w, bias, packed, c;
  Operands(int64_t m_, int64_t k_, int64_t n_)
      : m(m_), k(k_), n(n_), padded_m((m_ + kRows - 1) / kRows * kRows) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1, 1);
    // A padded with zero rows too: the last tile reads whole panels.
    a.assign(padded_m * k, 0.0f);
    w.resize(n * k);
    bias.resize(n);
    for (int64_t i = 0; i < m * k; ++i) a[i] = dist(rng);
    for (auto* v : {&w, &bias})
      for (float& x : *v) x = dist(rng);
    packed = pack_weights(w, n, k);
    c.assign(padded_m * n, 0.0f);
  }
  void run() { gemm(a.data(), padded_m, k, packed.data(), n, bias.data(), c.data()); }
};

// Largest |C - reference| / (sum_k |a||w| + |bias|) over the unpadded C: ~1e-7 for an fp32 GEMM.
double relative_error(int64_t m, int64_t k, int64_t n) {
  Operands o(m, k, n);
  o.run();
  double worst = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double ref = o.bias[j], scale = std::fabs(o.bias[j]);
      for (int64_t kk = 0; kk < k; ++kk) {
        ref += static_cast<double>(o.a[i * k + kk]) * o.w[j * k + kk];
        scale += std::fabs(static_cast<double>(o.a[i * k + kk]) * o.w[j * k + kk]);
      }
      worst = std::max(worst, std::fabs(o.c[i * n + j] - ref) / scale);
    }
  return worst;
}

struct GemmShape {
  int64_t m, k, n;
  const char* what;
};

void compare(const GemmShape& s, int pairs) {
  Operands o(s.m, s.k, s.n);
  const std::function<void()> onednn =
      kernels::cpu::onednn_reference_matmul(s.m, s.k, s.n, DType::F32);
  const double flops = 2.0 * s.m * s.k * s.n;
  const int reps = std::max(1, static_cast<int>(5e9 * num_threads() / flops));
  auto time_of = [&](const std::function<void()>& fn) {
    const double t0 = cpu_seconds();
    for (int i = 0; i < reps; ++i) fn();
    return (cpu_seconds() - t0) / num_threads() / reps;
  };
  const std::function<void()> ours = [&o] { o.run(); };
  ours();
  onednn();
  double best_ours = 1e30, best_onednn = 1e30;
  for (int i = 0; i < pairs; ++i) {
    best_ours = std::min(best_ours, time_of(ours));
    best_onednn = std::min(best_onednn, time_of(onednn));
  }
  const double g_ours = flops / best_ours / 1e9, g_onednn = flops / best_onednn / 1e9;
  std::printf("  %-20s %5lld %5lld %5lld %2d  %7.1f %7.1f  %5.3f\n", s.what,
              static_cast<long long>(s.m), static_cast<long long>(s.k), static_cast<long long>(s.n),
              num_threads(), g_ours, g_onednn, best_onednn / best_ours);
  std::fflush(stdout);
}

void part2(const std::vector<GemmShape>& shapes) {
  std::printf(
      "\n2. blocked GEMM with the 14x32 tile (C = A W^T + bias) vs oneDNN fp32 matmul; "
      "largest error vs double on 1000x333x96: %.2g\n",
      relative_error(1000, 333, 96));
  set_num_threads(1);
  double peak = 0;
  for (int i = 0; i < 3; ++i) peak = std::max(peak, fma_peak_cpu_time());
  std::printf("  FMA-loop peak, 1 thread: %.1f GFLOP/s (best of 3, CPU time)\n", peak);
  std::printf("  %-20s %5s %5s %5s %2s  %7s %7s  %5s\n", "shape", "M", "K", "N", "th", "ours",
              "oneDNN", "oneDNN");
  std::printf("  %-20s %5s %5s %5s %2s  %7s %7s  %5s\n", "", "", "", "", "", "GF/s", "GF/s",
              "/ ours");
  const char* pairs_env = std::getenv("GEMM_TILE_BENCH_PAIRS");
  const int pairs = pairs_env != nullptr ? std::max(1, std::atoi(pairs_env)) : 3;
  for (const GemmShape& s : shapes)
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      compare(s, pairs);
    }
}

}  // namespace

int main(int argc, char** argv) {
  bench::print_machine_header();
  if (active_cpu_isa() < CpuIsa::Avx512) {
    std::printf("needs AVX-512\n");
    return 0;
  }
  if (argc == 2 && std::string_view(argv[1]) == "tiles") {
    part1();
    return 0;
  }
  std::vector<GemmShape> shapes;
  for (int i = 1; i + 2 < argc; i += 3)
    shapes.push_back({std::atoll(argv[i]), std::atoll(argv[i + 1]), std::atoll(argv[i + 2]), ""});
  for (const GemmShape& s : shapes)
    if (s.m < 1 || s.k < 1 || s.n < kPanel || s.n % kPanel != 0) {
      std::fprintf(stderr,
                   "gemm_tile_bench: shape %lld %lld %lld: M, K >= 1 and N a multiple of %lld\n",
                   static_cast<long long>(s.m), static_cast<long long>(s.k),
                   static_cast<long long>(s.n), static_cast<long long>(kPanel));
      return 1;
    }
  if (shapes.empty()) {
    part1();
    shapes = {
        // FLUX (hidden 3072) on 4352 tokens, and 2176 (2 ranks).
        {4352, 3072, 9216, "flux qkv"},
        {4352, 3072, 12288, "flux mlp in"},
        {4352, 12288, 3072, "flux mlp out"},
        {4352, 3072, 3072, "flux proj"},
        {4352, 15360, 3072, "flux single out"},
        {2176, 3072, 12288, "flux mlp in /2"},
        // The mid-size FLUX and Qwen-Image of tools/compare_diffusers (hidden 1024).
        {4352, 1024, 4096, "mid flux mlp in"},
        {4352, 4096, 1024, "mid flux mlp out"},
        {1024, 1024, 4096, "mid qwen mlp in"},
        {1152, 1024, 3072, "mid qwen qkv"},
    };
  }
  part2(shapes);
  return 0;
}

#else

int main() {
  bench::print_machine_header();
  std::printf("needs AVX-512 (x86-64)\n");
  return 0;
}

#endif
