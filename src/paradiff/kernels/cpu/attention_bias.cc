// CPU body of attention_bias.h: full score rows per block of query rows, fp32 throughout.
#include "paradiff/kernels/attention_bias.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "paradiff/kernels/cpu/isa_prelude.h"

// Cold (text encoders, once per prompt): one version, built for the build's baseline with the
// portable level's helpers.
namespace paradiff::kernels::isa_portable {
#include "paradiff/kernels/cpu/row_io.h"
#include "paradiff/kernels/cpu/vec_math.h"
}  // namespace paradiff::kernels::isa_portable

namespace paradiff::kernels {

namespace {

using isa_portable::load_row;
using isa_portable::store_row;

// p[j] = exp(s[j] - max) for j < n; returns the sum.
float exp_and_sum(float* s, int64_t n, float max) {
  float sum = 0.0f;
  int64_t j = 0;
#if defined(PARADIFF_VEC_LANES)
  using namespace isa_portable;
  const VecF m = vset(max);
  VecF acc = vset(0.0f);
  for (; j + kLanes <= n; j += kLanes) {
    const VecF e = vexp(vsub(vload(s + j), m));
    vstore(s + j, e);
    acc = vadd(acc, e);
  }
  sum = vsum(acc);
#endif
  for (; j < n; ++j) {
    s[j] = std::exp(s[j] - max);
    sum += s[j];
  }
  return sum;
}

}  // namespace

template <>
void impl::attention_with_bias<DeviceKind::CPU>(const Tensor& q, const Tensor& k, const Tensor& v,
                                                const Tensor& bias, bool causal, float scale,
                                                Tensor& out) {
  const int64_t b = q.dim(0), sq = q.dim(1), h = q.dim(2), d = q.dim(3);
  const int64_t skv = k.dim(1);
  if (b == 0 || sq == 0 || h == 0) return;

  const int threads = std::max(1, std::min<int>(omp_get_max_threads(), static_cast<int>(b * h)));
  // Per thread: K of one head transposed (D, Skv), V (Skv, D), and for a block of kRows query
  // rows their scores (kRows, Skv), queries and outputs (kRows, D). A block shares every load of
  // K and V among its rows.
  constexpr int64_t kRows = 8;
  const int64_t per_thread = 2 * d * skv + kRows * (skv + 2 * d);
  Tensor scratch = Tensor::empty({threads, std::max<int64_t>(per_thread, 1)}, DType::F32);
  const float* bias_data = bias.defined() ? bias.data<float>() : nullptr;
  const int64_t row = h * d;  // elements between consecutive tokens of one head

#pragma omp parallel for schedule(dynamic) num_threads(threads)
  for (int64_t task = 0; task < b * h; ++task) {
    const int64_t bi = task / h, hi = task % h;
    float* kt = scratch.data<float>() + omp_get_thread_num() * per_thread;
    float* vv = kt + d * skv;
    float* s = vv + skv * d;      // (kRows, Skv)
    float* qb = s + kRows * skv;  // (kRows, D)
    float* acc = qb + kRows * d;  // (kRows, D)
    const int64_t kv_base = bi * skv * row + hi * d;
    for (int64_t j = 0; j < skv; ++j) {
      load_row(k.raw_data(), k.dtype(), kv_base + j * row, d, acc);
      for (int64_t c = 0; c < d; ++c) kt[c * skv + j] = acc[c];
      load_row(v.raw_data(), v.dtype(), kv_base + j * row, d, vv + j * d);
    }
    for (int64_t i0 = 0; i0 < sq; i0 += kRows) {
      const int64_t rows = std::min(kRows, sq - i0);
      // Keys row r sees: all, or (causal) those up to its own position.
      auto visible = [&](int64_t r) { return causal ? i0 + r + 1 : skv; };
      const int64_t n_max = visible(rows - 1);
      std::fill(acc, acc + rows * d, 0.0f);
      if (n_max > 0) {
        for (int64_t r = 0; r < rows; ++r)
          load_row(q.raw_data(), q.dtype(), ((bi * sq + i0 + r) * h + hi) * d, d, qb + r * d);
        std::fill(s, s + rows * skv, 0.0f);
        for (int64_t c = 0; c < d; ++c) {
          const float* kc = kt + c * skv;
          for (int64_t r = 0; r < rows; ++r) {
            const float qc = qb[r * d + c];
            float* sr = s + r * skv;
#pragma omp simd
            for (int64_t j = 0; j < n_max; ++j) sr[j] += qc * kc[j];
          }
        }
        float inv[kRows];
        for (int64_t r = 0; r < rows; ++r) {
          float* sr = s + r * skv;
          const int64_t n = visible(r);
          const float* bias_row = bias_data ? bias_data + (hi * sq + i0 + r) * skv : nullptr;
          float max = -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j < n; ++j) {
            sr[j] = sr[j] * scale + (bias_row ? bias_row[j] : 0.0f);
            max = std::max(max, sr[j]);
          }
          inv[r] = 1.0f / exp_and_sum(sr, n, max);
        }
        for (int64_t j = 0; j < n_max; ++j) {
          const float* vj = vv + j * d;
          for (int64_t r = causal ? std::max<int64_t>(0, j - i0) : 0; r < rows; ++r) {
            const float p = s[r * skv + j];
            float* ar = acc + r * d;
#pragma omp simd
            for (int64_t c = 0; c < d; ++c) ar[c] += p * vj[c];
          }
        }
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < d; ++c) acc[r * d + c] *= inv[r];
      }
      for (int64_t r = 0; r < rows; ++r)
        store_row(acc + r * d, out.raw_data(), out.dtype(), ((bi * sq + i0 + r) * h + hi) * d, d);
    }
  }
}

}  // namespace paradiff::kernels
