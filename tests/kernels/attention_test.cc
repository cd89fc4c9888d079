#include "paradiff/kernels/attention.h"

#include <gtest/gtest.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "paradiff/core/cpu_isa.h"
#include "paradiff/kernels/attention_merge.h"
#include "paradiff/kernels/cpu/attention_onednn.h"
#include "paradiff/kernels/cpu/attention_tile.h"
#include "testing/test_util.h"

#if defined(__AVX512F__)
// GCC 12 reports its own _mm512_undefined_ps() as uninitialised once inlined (bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "paradiff/kernels/cpu/attention_exp_avx512.h"
#endif
#if defined(__AVX2__) && defined(__FMA__)
#include "paradiff/kernels/cpu/attention_exp_avx2.h"
#endif

namespace paradiff::kernels {
namespace {

using testing::make_rng;
using testing::random_uniform;
using testing::relative_error;
using testing::to_doubles;

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Reference {
  std::vector<double> out;  // (B, Sq, H, D)
  std::vector<double> lse;  // (B, Sq, H)
};

// softmax(scale * q k^T) v and its log-sum-exp, row by row in double, from the values the
// tensors hold (bf16 inputs are already rounded).
Reference reference(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  const int64_t nb = q.dim(0), sq = q.dim(1), nh = q.dim(2), d = q.dim(3), skv = k.dim(1);
  if (scale == 0.0) scale = 1.0 / std::sqrt(static_cast<double>(d));
  const auto qs = to_doubles(q), ks = to_doubles(k), vs = to_doubles(v);
  Reference r{std::vector<double>(qs.size(), 0.0),
              std::vector<double>(static_cast<size_t>(nb * sq * nh), -kInf)};
  std::vector<double> s(static_cast<size_t>(skv));
  for (int64_t b = 0; b < nb; ++b) {
    for (int64_t i = 0; i < sq; ++i) {
      for (int64_t h = 0; h < nh; ++h) {
        const double* qi = &qs[((b * sq + i) * nh + h) * d];
        double m = -kInf;
        for (int64_t j = 0; j < skv; ++j) {
          const double* kj = &ks[((b * skv + j) * nh + h) * d];
          double dot = 0.0;
          for (int64_t x = 0; x < d; ++x) dot += qi[x] * kj[x];
          s[j] = scale * dot;
          m = std::max(m, s[j]);
        }
        if (skv == 0) continue;
        double l = 0.0;
        double* o = &r.out[((b * sq + i) * nh + h) * d];
        for (int64_t j = 0; j < skv; ++j) {
          const double p = std::exp(s[j] - m);
          l += p;
          const double* vj = &vs[((b * skv + j) * nh + h) * d];
          for (int64_t x = 0; x < d; ++x) o[x] += p * vj[x];
        }
        for (int64_t x = 0; x < d; ++x) o[x] /= l;
        r.lse[(b * sq + i) * nh + h] = m + std::log(l);
      }
    }
  }
  return r;
}

// The largest |got - want| / (1 + |want|) over all rows; +inf on a non-finite value.
double lse_error(const Tensor& got, const std::vector<double>& want) {
  const auto g = to_doubles(got);
  double worst = 0.0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isinf(want[i]) && g[i] == want[i]) continue;
    if (!std::isfinite(g[i])) return kInf;
    worst = std::max(worst, std::abs(g[i] - want[i]) / (1.0 + std::abs(want[i])));
  }
  return worst;
}

struct AttentionCase {
  int64_t b, h, sq, skv, d;
  DType dtype;      // of q, k, v
  DType out_dtype;  // of out
  float scale;      // 0 = 1/sqrt(D)
};

void PrintTo(const AttentionCase& c, std::ostream* os) {
  *os << "q " << dtype_name(c.dtype) << "[" << c.b << ", " << c.sq << ", " << c.h << ", " << c.d
      << "], Skv " << c.skv << ", out " << dtype_name(c.out_dtype) << ", scale " << c.scale;
}

std::string case_name(const ::testing::TestParamInfo<AttentionCase>& info) {
  const auto& c = info.param;
  std::string scale = c.scale == 0.0f ? "default" : (c.scale < 0 ? "neg" : "custom");
  return str_cat("B", c.b, "_H", c.h, "_Sq", c.sq, "_Skv", c.skv, "_D", c.d, "_",
                 dtype_name(c.dtype), "_out", dtype_name(c.out_dtype), "_scale", scale);
}

class AttentionTest : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(AttentionTest, MatchesDoubleReference) {
  const AttentionCase c = GetParam();
  auto rng = make_rng();
  const Tensor q = random_uniform({c.b, c.sq, c.h, c.d}, c.dtype, rng);
  const Tensor k = random_uniform({c.b, c.skv, c.h, c.d}, c.dtype, rng);
  const Tensor v = random_uniform({c.b, c.skv, c.h, c.d}, c.dtype, rng);
  Tensor out = Tensor::empty(q.shape(), c.out_dtype);
  Tensor lse = Tensor::empty({c.b, c.sq, c.h}, DType::F32);
  attention(q, k, v, out, &lse, c.scale);
  const Reference ref = reference(q, k, v, c.scale);
  // f32: f32 rounding only. bf16: P is rounded to bf16 before P V (relative 2^-9 per element).
  // A bf16 out adds its own rounding (2^-9 relative per element).
  double tol = c.dtype == DType::F32 ? 1e-5 : 1e-2;
  if (c.out_dtype == DType::BF16) tol = std::max(tol, 4e-3);
  EXPECT_LE(relative_error(out, ref.out), tol);
  // The scores are f32 sums of exact products in both dtypes, so lse is f32-accurate.
  EXPECT_LE(lse_error(lse, ref.lse), 1e-5);
}

// Covers each D (and large, odd D whose last vector is partial), odd S around the tile sizes (48
// query rows, 64 keys) and the brief's odd S, both dtypes, both output dtypes, default, custom and
// negative scales, one and several heads in flight (few query tiles pack several heads at once).
const AttentionCase kCases[] = {
    {1, 1, 1, 1, 8, DType::F32, DType::F32, 0.0f},
    {1, 1, 7, 33, 8, DType::F32, DType::F32, 0.0f},
    {2, 3, 33, 7, 24, DType::F32, DType::F32, 0.0f},
    {1, 3, 130, 257, 40, DType::F32, DType::F32, 0.3f},
    {2, 1, 257, 130, 72, DType::F32, DType::F32, -0.2f},
    {1, 1, 515, 63, 128, DType::F32, DType::F32, 0.0f},
    {1, 3, 49, 515, 128, DType::F32, DType::F32, 0.0f},
    {2, 3, 97, 65, 72, DType::F32, DType::BF16, 0.0f},
    {1, 1, 47, 129, 13, DType::F32, DType::F32, 0.0f},
    {1, 2, 60, 100, 161, DType::F32, DType::F32, 0.0f},
    {1, 1, 1, 515, 40, DType::F32, DType::F32, 0.0f},
    {1, 1, 1, 1, 8, DType::BF16, DType::F32, 0.0f},
    {1, 1, 7, 33, 8, DType::BF16, DType::BF16, 0.0f},
    {2, 3, 33, 7, 24, DType::BF16, DType::F32, 0.0f},
    {1, 3, 130, 257, 40, DType::BF16, DType::F32, 0.3f},
    {2, 1, 257, 130, 72, DType::BF16, DType::BF16, -0.2f},
    {1, 1, 515, 63, 128, DType::BF16, DType::F32, 0.0f},
    {1, 3, 49, 515, 128, DType::BF16, DType::BF16, 0.0f},
    {1, 1, 47, 129, 13, DType::BF16, DType::F32, 0.0f},
    {2, 3, 96, 128, 128, DType::BF16, DType::F32, 0.0f},
    {1, 2, 60, 100, 200, DType::BF16, DType::F32, 0.0f},
    {1, 2, 60, 100, 161, DType::BF16, DType::F32, 0.0f},
    {1, 1, 1, 515, 40, DType::BF16, DType::F32, 0.0f},
};
INSTANTIATE_TEST_SUITE_P(Shapes, AttentionTest, ::testing::ValuesIn(kCases), case_name);

TEST(Attention, ChunkedKvMergedWithLseEqualsWholeKv) {
  auto rng = make_rng();
  const int64_t b = 2, sq = 70, skv = 257, h = 3, d = 40;
  const Tensor q = random_uniform({b, sq, h, d}, DType::F32, rng);
  const Tensor k = random_uniform({b, skv, h, d}, DType::F32, rng);
  const Tensor v = random_uniform({b, skv, h, d}, DType::F32, rng);
  Tensor whole = Tensor::empty(q.shape(), DType::F32);
  Tensor whole_lse = Tensor::empty({b, sq, h}, DType::F32);
  attention(q, k, v, whole, &whole_lse);
  const Reference ref = reference(q, k, v, 0.0);
  ASSERT_LE(relative_error(whole, ref.out), 1e-5);

  // K/V rows [begin, begin + n) of every batch entry, as a contiguous tensor.
  auto keys = [&](const Tensor& t, int64_t begin, int64_t n) {
    Tensor part = Tensor::empty({b, n, h, d}, DType::F32);
    for (int64_t i = 0; i < b; ++i)
      std::memcpy(part.data<float>() + i * n * h * d, t.data<float>() + (i * skv + begin) * h * d,
                  static_cast<size_t>(n * h * d) * sizeof(float));
    return part;
  };
  // Splits at a block edge, inside a block, and with one side empty (on either side).
  for (int64_t split : {int64_t{64}, int64_t{100}, int64_t{0}, skv}) {
    SCOPED_TRACE(str_cat("split at ", split));
    Tensor out = Tensor::empty(q.shape(), DType::F32), lse = Tensor::empty({b, sq, h}, DType::F32);
    Tensor out_b = Tensor::empty(q.shape(), DType::F32);
    Tensor lse_b = Tensor::empty({b, sq, h}, DType::F32);
    attention(q, keys(k, 0, split), keys(v, 0, split), out, &lse);
    attention(q, keys(k, split, skv - split), keys(v, split, skv - split), out_b, &lse_b);
    merge_attention(out, lse, out_b, lse_b);
    EXPECT_LE(relative_error(out, ref.out), 1e-5);
    EXPECT_LE(lse_error(lse, ref.lse), 1e-5);
  }
}

TEST(Attention, EmptyKvGivesZeroOutputAndMinusInfinityLse) {
  auto rng = make_rng();
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Tensor q = random_uniform({2, 5, 3, 24}, dtype, rng);
    const Tensor kv = Tensor::empty({2, 0, 3, 24}, dtype);
    Tensor out = random_uniform(q.shape(), dtype, rng);  // garbage that must be overwritten
    Tensor lse = random_uniform({2, 5, 3}, DType::F32, rng);
    attention(q, kv, kv, out, &lse);
    for (double x : to_doubles(out)) ASSERT_EQ(x, 0.0);
    for (double x : to_doubles(lse)) ASSERT_EQ(x, -kInf);
  }
}

TEST(Attention, LargeScoresStayFiniteAndAccurate) {
  // Inputs x30: scaled scores reach several hundred, where exp without the running max
  // overflows and a wrong rescale between K/V blocks shows at once. In f32 a dot product of that
  // size carries up to ~1e-4 absolute rounding, which the softmax can turn into relative error
  // of that order (typically ~5e-6): the f32 tolerance is looser here for that reason, not for
  // the kernel's.
  auto rng = make_rng();
  for (DType dtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const int64_t b = 1, sq = 100, skv = 300, h = 2, d = 72;
    const Tensor q = random_uniform({b, sq, h, d}, dtype, rng, -30.0f, 30.0f);
    const Tensor k = random_uniform({b, skv, h, d}, dtype, rng, -30.0f, 30.0f);
    const Tensor v = random_uniform({b, skv, h, d}, dtype, rng);
    Tensor out = Tensor::empty(q.shape(), DType::F32);
    Tensor lse = Tensor::empty({b, sq, h}, DType::F32);
    attention(q, k, v, out, &lse);
    ASSERT_TRUE(testing::all_finite(out));
    ASSERT_TRUE(testing::all_finite(lse));
    const Reference ref = reference(q, k, v, 0.0);
    double max_lse = 0.0;
    for (double x : ref.lse) max_lse = std::max(max_lse, std::abs(x));
    EXPECT_GT(max_lse, 200.0) << "the scores are not large enough to test anything";
    EXPECT_LE(relative_error(out, ref.out), dtype == DType::F32 ? 1e-4 : 1e-2);
    EXPECT_LE(lse_error(lse, ref.lse), 1e-5);
  }
}

TEST(Attention, RunningMaxMovesAcrossLaterBlocks) {
  // Key j is scaled by 1 + 30 j / Skv, so the largest scores come in later K/V blocks and the
  // running max has to move (and the partial sums be rescaled) many times along a row.
  auto rng = make_rng();
  for (DType dtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const int64_t b = 1, sq = 50, skv = 700, h = 2, d = 40;
    const Tensor q = random_uniform({b, sq, h, d}, dtype, rng);
    Tensor kf = random_uniform({b, skv, h, d}, DType::F32, rng);
    for (int64_t j = 0; j < skv; ++j)
      for (int64_t x = 0; x < h * d; ++x) kf.data<float>()[j * h * d + x] *= 1.0f + 30.0f * j / skv;
    const Tensor k = kf.to(dtype);
    const Tensor v = random_uniform({b, skv, h, d}, dtype, rng);
    Tensor out = Tensor::empty(q.shape(), DType::F32);
    Tensor lse = Tensor::empty({b, sq, h}, DType::F32);
    attention(q, k, v, out, &lse);
    const Reference ref = reference(q, k, v, 0.0);
    EXPECT_LE(relative_error(out, ref.out), dtype == DType::F32 ? 1e-5 : 1e-2);
    EXPECT_LE(lse_error(lse, ref.lse), 1e-5);
  }
}

TEST(Attention, ResultDoesNotDependOnThreadCount) {
  // Each query tile is computed by one thread in a fixed order, so the result is bitwise the
  // same for any thread count.
  auto rng = make_rng();
  const int saved = omp_get_max_threads();
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Tensor q = random_uniform({1, 300, 3, 40}, dtype, rng);
    const Tensor k = random_uniform({1, 200, 3, 40}, dtype, rng);
    const Tensor v = random_uniform({1, 200, 3, 40}, dtype, rng);
    Tensor one = Tensor::empty(q.shape(), DType::F32), three = one.clone();
    omp_set_num_threads(1);
    attention(q, k, v, one);
    omp_set_num_threads(3);
    attention(q, k, v, three);
    EXPECT_EQ(std::memcmp(one.raw_data(), three.raw_data(), one.nbytes()), 0);
  }
  omp_set_num_threads(saved);
}

// Expects `fn` to throw an Error whose message contains every one of `parts`.
template <typename Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    for (const auto& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "message \"" << e.what() << "\" lacks \"" << part << "\"";
  }
}

TEST(Attention, RejectsWrongShapesAndDtypesWithClearMessages) {
  const Tensor q = Tensor::zeros({1, 4, 2, 8}, DType::F32);
  const Tensor k = Tensor::zeros({1, 6, 2, 8}, DType::F32);
  Tensor out = Tensor::zeros({1, 4, 2, 8}, DType::F32);
  Tensor lse = Tensor::zeros({1, 4, 2}, DType::F32);
  expect_error(
      [&] {
        attention(Tensor::zeros({4, 2, 8}, DType::F32), k, k, out);
      },
      {"q must have shape (B, Sq, H, D)", "f32[4, 2, 8]"});
  expect_error(
      [&] {
        attention(Tensor::zeros({1, 4, 2, 0}, DType::F32), k, k, out);
      },
      {"head dim", "f32[1, 4, 2, 0]"});
  expect_error(
      [&] {
        attention(Tensor::zeros({1, 4, 2, 8}, DType::I64), k, k, out);
      },
      {"q must be f32 or bf16", "i64[1, 4, 2, 8]"});
  const Tensor k3 = Tensor::zeros({1, 6, 3, 8}, DType::F32);
  expect_error([&] { attention(q, k3, k3, out); },
               {"k must have shape", "[1, Skv, 2, 8]", "f32[1, 6, 3, 8]"});
  expect_error(
      [&] {
        attention(q, k, Tensor::zeros({1, 5, 2, 8}, DType::F32), out);
      },
      {"v must have the shape of k", "[1, 6, 2, 8]", "f32[1, 5, 2, 8]"});
  expect_error([&] { attention(q, k.to(DType::BF16), k, out); },
               {"same dtype", "bf16[1, 6, 2, 8]"});
  Tensor bad_out = Tensor::zeros({1, 4, 2, 7}, DType::F32);
  expect_error([&] { attention(q, k, k, bad_out); },
               {"out must have the shape of q", "[1, 4, 2, 8]", "f32[1, 4, 2, 7]"});
  Tensor f16_out = Tensor::zeros({1, 4, 2, 8}, DType::F16);
  expect_error([&] { attention(q, k, k, f16_out); }, {"out must be f32 or bf16", "f16"});
  Tensor bad_lse = Tensor::zeros({1, 4, 3}, DType::F32);
  expect_error([&] { attention(q, k, k, out, &bad_lse); },
               {"lse must be f32[1, 4, 2]", "f32[1, 4, 3]"});
  Tensor bf16_lse = Tensor::zeros({1, 4, 2}, DType::BF16);
  expect_error([&] { attention(q, k, k, out, &bf16_lse); }, {"lse must be f32", "bf16[1, 4, 2]"});
  expect_error([&] { attention(q, k, k, out, &lse, std::numeric_limits<float>::quiet_NaN()); },
               {"scale must be finite"});
}

#if defined(__AVX512F__)
TEST(AttentionExp, Exp2IsAccurateToAFewUlp) {
  // Every t on a fine grid over the softmax's range, plus the clamp and NaN behaviour.
  double worst = 0.0;
  alignas(64) float t[16], got[16];
  for (int64_t i = 0; i < 135 * 4096; i += 16) {
    for (int k = 0; k < 16; ++k) t[k] = -125.0f + static_cast<float>(i + k) / 4096.0f;
    _mm512_store_ps(got, attention_detail::exp2_approx(_mm512_load_ps(t)));
    for (int k = 0; k < 16; ++k) {
      const double want = std::exp2(static_cast<double>(t[k]));
      worst = std::max(worst, std::abs(got[k] - want) / want);
    }
  }
  EXPECT_LE(worst, 2.5e-7);
  for (int k = 0; k < 16; ++k) t[k] = k < 8 ? -std::numeric_limits<float>::infinity() : NAN;
  _mm512_store_ps(got, attention_detail::exp2_approx(_mm512_load_ps(t)));
  EXPECT_EQ(got[0], std::exp2(-125.0f));  // clamped: a normal float, never a denormal
  EXPECT_TRUE(std::isnan(got[8]));
}
#endif

#if defined(__AVX2__) && defined(__FMA__)
TEST(AttentionExp, Avx2Exp2IsAccurateToAFewUlp) {
  double worst = 0.0;
  alignas(32) float t[8], got[8];
  for (int64_t i = 0; i < 252 * 4096; i += 8) {  // t in [-125, 127)
    for (int k = 0; k < 8; ++k) t[k] = -125.0f + static_cast<float>(i + k) / 4096.0f;
    _mm256_store_ps(got, attention_detail::exp2_approx(_mm256_load_ps(t)));
    for (int k = 0; k < 8; ++k) {
      const double want = std::exp2(static_cast<double>(t[k]));
      worst = std::max(worst, std::abs(got[k] - want) / want);
    }
  }
  EXPECT_LE(worst, 2.5e-7);
  const float inf = std::numeric_limits<float>::infinity();
  const float special[8] = {-inf, -1000.0f, 128.0f, 1000.0f, inf, NAN, -NAN, 0.0f};
  std::copy(special, special + 8, t);
  _mm256_store_ps(got, attention_detail::exp2_approx(_mm256_load_ps(t)));
  EXPECT_EQ(got[0], std::exp2(-125.0f));  // clamped: a normal float, never a denormal
  EXPECT_EQ(got[1], std::exp2(-125.0f));
  EXPECT_EQ(got[2], inf);
  EXPECT_EQ(got[3], inf);
  EXPECT_EQ(got[4], inf);
  EXPECT_TRUE(std::isnan(got[5]));
  EXPECT_TRUE(std::isnan(got[6]));
  EXPECT_EQ(got[7], 1.0f);
}
#endif

// What kernels::attention runs at each instruction-set level (attention_tile.h).
struct ExpectedTiles {
  std::string f32, bf16;
  bool bf16_in_f32;  // bf16 inputs widened and computed in f32
};
ExpectedTiles expected_tiles(CpuIsa level) {
  switch (level) {
    case CpuIsa::Amx:
    case CpuIsa::Avx512Bf16:
      return {"avx512 f32", "avx512_bf16 bf16 (vdpbf16ps)", false};
    case CpuIsa::Avx512:
      return {"avx512 f32", "avx512 f32 (bf16 widened)", true};
    case CpuIsa::Avx2:
      return {"avx2 f32", "avx2 f32 (bf16 widened)", true};
    case CpuIsa::Portable:
      break;
  }
  return {"portable f32", "portable bf16", false};
}

// Every level this CPU can run, and the active one (PARADIFF_MAX_ISA lowers it).
std::vector<CpuIsa> levels_of_this_cpu() {
  std::vector<CpuIsa> levels;
  for (CpuIsa level : {CpuIsa::Portable, CpuIsa::Avx2, CpuIsa::Avx512, CpuIsa::Avx512Bf16})
    if (level <= hardware_cpu_isa()) levels.push_back(level);
  return levels;
}

// The level whose tiles kernels::attention runs: the active one, except that where bf16 has the
// instructions but is computed in fp32 (native_bf16(), core/cpu_isa.h) bf16 inputs are widened to
// the avx512 f32 tiles.
CpuIsa tile_level() {
  const CpuIsa active = active_cpu_isa();
  return active >= CpuIsa::Avx512Bf16 && !native_bf16() ? CpuIsa::Avx512 : active;
}

TEST(AttentionTile, SelectsTheImplementationOfTheActiveLevel) {
  const CpuIsa level = tile_level();
  SCOPED_TRACE(cpu_isa_summary());
  const ExpectedTiles want = expected_tiles(level);
  EXPECT_EQ(attention_tile_implementation(DType::F32), want.f32);
  EXPECT_EQ(attention_tile_implementation(DType::BF16), want.bf16);
  EXPECT_EQ(&attention_detail::tile_kernels(), &attention_detail::tile_kernels_for(level));
  for (CpuIsa l : levels_of_this_cpu()) {
    SCOPED_TRACE(cpu_isa_name(l));
    EXPECT_EQ(attention_detail::tile_kernels_for(l).f32, expected_tiles(l).f32);
    EXPECT_EQ(attention_detail::tile_kernels_for(l).bf16, expected_tiles(l).bf16);
  }
}

// kernels::attention's output for these inputs with one level's tiles.
Tensor attend_at(CpuIsa level, const Tensor& q, const Tensor& k, const Tensor& v, DType out_dtype,
                 Tensor* lse = nullptr, float scale = 0.0f) {
  Tensor out = Tensor::empty(q.shape(), out_dtype);
  if (scale == 0.0f) scale = 1.0f / std::sqrt(static_cast<float>(q.dim(3)));
  attention_detail::attend(attention_detail::tile_kernels_for(level), q, k, v, out, lse, scale);
  return out;
}

TEST(AttentionTile, AttentionRunsTheActiveLevelsTiles) {
  // Bit for bit what the active level's tiles give, and (where the CPU has several levels) not
  // what the others give: the dispatch really runs the selected implementation.
  auto rng = make_rng();
  for (DType dtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor q = random_uniform({1, 100, 2, 40}, dtype, rng);
    const Tensor k = random_uniform({1, 150, 2, 40}, dtype, rng);
    const Tensor v = random_uniform({1, 150, 2, 40}, dtype, rng);
    Tensor out = Tensor::empty(q.shape(), DType::F32);
    attention(q, k, v, out);
    if (attention_detail::onednn_attention_preferred(dtype)) {
      // bf16 with AMX: oneDNN's matmuls around a whole-row softmax, not the tiles.
      EXPECT_EQ(attention_implementation(dtype), attention_detail::onednn_attention_name(dtype));
      Tensor want = Tensor::empty(q.shape(), DType::F32);
      attention_detail::attend_onednn(q, k, v, want, nullptr,
                                      1.0f / std::sqrt(static_cast<float>(q.dim(3))));
      EXPECT_EQ(std::memcmp(out.raw_data(), want.raw_data(), out.nbytes()), 0);
      const Tensor tiles = attend_at(tile_level(), q, k, v, DType::F32);
      EXPECT_NE(std::memcmp(out.raw_data(), tiles.raw_data(), out.nbytes()), 0);
      continue;
    }
    EXPECT_EQ(attention_implementation(dtype), attention_tile_implementation(dtype));
    const Tensor want = attend_at(tile_level(), q, k, v, DType::F32);
    EXPECT_EQ(std::memcmp(out.raw_data(), want.raw_data(), out.nbytes()), 0);
    for (CpuIsa level : levels_of_this_cpu()) {
      const ExpectedTiles tiles = expected_tiles(level);
      if ((dtype == DType::F32 ? tiles.f32 : tiles.bf16) == attention_tile_implementation(dtype))
        continue;  // the same tiles as the active level's
      const Tensor other = attend_at(level, q, k, v, DType::F32);
      EXPECT_NE(std::memcmp(out.raw_data(), other.raw_data(), out.nbytes()), 0)
          << "the tiles of " << cpu_isa_name(level) << " give the same bits";
    }
  }
}

TEST(AttentionTile, EveryLevelMatchesTheDoubleReference) {
  // Each implementation this CPU can run, whatever the cap, on shapes with ragged tiles, blocks
  // and head dims. bf16 inputs widened to f32 are exact, so those levels are f32-accurate for
  // bf16 inputs too; the bf16 pair levels round P to bf16.
  const AttentionCase cases[] = {
      {2, 3, 33, 7, 24, DType::F32, DType::F32, 0.0f},
      {1, 3, 130, 257, 40, DType::F32, DType::F32, 0.3f},
      {2, 1, 97, 130, 72, DType::F32, DType::BF16, -0.2f},
      {1, 2, 60, 100, 161, DType::F32, DType::F32, 0.0f},
      {1, 1, 47, 129, 13, DType::BF16, DType::F32, 0.0f},
      {2, 3, 33, 7, 24, DType::BF16, DType::F32, 0.0f},
      {1, 3, 130, 257, 40, DType::BF16, DType::F32, 0.3f},
      {2, 1, 97, 130, 72, DType::BF16, DType::BF16, -0.2f},
      {1, 2, 60, 100, 161, DType::BF16, DType::F32, 0.0f},
      {1, 1, 49, 515, 128, DType::BF16, DType::F32, 0.0f},
  };
  auto rng = make_rng();
  for (const AttentionCase& c : cases) {
    SCOPED_TRACE(::testing::PrintToString(c));
    const Tensor q = random_uniform({c.b, c.sq, c.h, c.d}, c.dtype, rng);
    const Tensor k = random_uniform({c.b, c.skv, c.h, c.d}, c.dtype, rng);
    const Tensor v = random_uniform({c.b, c.skv, c.h, c.d}, c.dtype, rng);
    const Reference ref = reference(q, k, v, c.scale);
    for (CpuIsa level : levels_of_this_cpu()) {
      SCOPED_TRACE(cpu_isa_name(level));
      Tensor lse = Tensor::empty({c.b, c.sq, c.h}, DType::F32);
      const Tensor out = attend_at(level, q, k, v, c.out_dtype, &lse, c.scale);
      const bool f32_math = c.dtype == DType::F32 || expected_tiles(level).bf16_in_f32;
      double tol = f32_math ? 1e-5 : 1e-2;
      if (c.out_dtype == DType::BF16) tol = std::max(tol, 4e-3);
      EXPECT_LE(relative_error(out, ref.out), tol);
      EXPECT_LE(lse_error(lse, ref.lse), 1e-5);
    }
  }
}

TEST(AttentionOnednn, MatchesTheDoubleReferenceWithLse) {
  // The oneDNN path (what bf16 runs with AMX) on ragged shapes, negative scales, bf16 output and a
  // tail block of query rows, wherever oneDNN has the dtype (bf16 matmul needs the avx512 level).
  const AttentionCase cases[] = {
      {2, 3, 33, 7, 24, DType::F32, DType::F32, 0.0f},
      {1, 3, 300, 257, 40, DType::F32, DType::F32, 0.3f},
      {2, 1, 97, 130, 72, DType::F32, DType::F32, -0.2f},
      {1, 1, 47, 129, 13, DType::BF16, DType::F32, 0.0f},
      {1, 3, 300, 257, 40, DType::BF16, DType::F32, 0.3f},
      {2, 1, 97, 130, 72, DType::BF16, DType::BF16, -0.2f},
      {1, 2, 49, 3000, 128, DType::BF16, DType::F32, 0.0f},
      // 128-row blocks (the last of 44 rows) over two 512-key chunks and a 76-key tail
      {1, 2, 300, 1100, 64, DType::BF16, DType::F32, 0.0f},
      // 9 heads of 2 MiB packed K and V, past the 16 MiB budget: packed in groups of 5 and 4
      {1, 9, 20, 4000, 128, DType::BF16, DType::F32, 0.0f},
      {2, 2, 24, 24, 16, DType::BF16, DType::BF16, 0.0f},
      {1, 2, 20, 28, 16, DType::BF16, DType::F32, 0.0f},
  };
  auto rng = make_rng();
  for (const AttentionCase& c : cases) {
    if (c.dtype == DType::BF16 && active_cpu_isa() < CpuIsa::Avx512) continue;
    SCOPED_TRACE(::testing::PrintToString(c));
    const Tensor q = random_uniform({c.b, c.sq, c.h, c.d}, c.dtype, rng);
    const Tensor k = random_uniform({c.b, c.skv, c.h, c.d}, c.dtype, rng);
    const Tensor v = random_uniform({c.b, c.skv, c.h, c.d}, c.dtype, rng);
    const Reference ref = reference(q, k, v, c.scale);
    Tensor out = Tensor::empty(q.shape(), c.out_dtype);
    Tensor lse = Tensor::empty({c.b, c.sq, c.h}, DType::F32);
    const float scale =
        c.scale == 0.0f ? 1.0f / std::sqrt(static_cast<float>(c.d)) : static_cast<float>(c.scale);
    attention_detail::attend_onednn(q, k, v, out, &lse, scale);
    double tol = c.dtype == DType::F32 ? 1e-5 : 1e-2;
    if (c.out_dtype == DType::BF16) tol = std::max(tol, 4e-3);
    EXPECT_LE(relative_error(out, ref.out), tol);
    EXPECT_LE(lse_error(lse, ref.lse), 1e-5);
  }
  // oneDNN has no f32 x f32 -> bf16 matmul: refused with a message (the path runs bf16 inputs).
  const Tensor q = random_uniform({1, 5, 1, 8}, DType::F32, rng);
  Tensor out = Tensor::empty(q.shape(), DType::BF16);
  try {
    attention_detail::attend_onednn(q, q, q, out, nullptr, 0.5f);
    ADD_FAILURE() << "f32 inputs with a bf16 output were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("f32 inputs need an f32 output"), std::string::npos)
        << e.what();
  }
}

// attend_onednn on bf16 q, k, v at each scale against the double reference: the output within
// bf16 rounding (1e-2), the log-sum-exp within 1e-5.
void expect_onednn_bf16_matches_reference(const Tensor& q, const Tensor& k, const Tensor& v,
                                          std::initializer_list<double> scales) {
  for (double scale : scales) {
    SCOPED_TRACE(scale);
    const Reference ref = reference(q, k, v, scale);
    Tensor out = Tensor::empty(q.shape(), DType::F32);
    Tensor lse = Tensor::empty({q.dim(0), q.dim(1), q.dim(2)}, DType::F32);
    attention_detail::attend_onednn(q, k, v, out, &lse, static_cast<float>(scale));
    EXPECT_LE(relative_error(out, ref.out), 1e-2);
    EXPECT_LE(lse_error(lse, ref.lse), 1e-5);
  }
}

TEST(AttentionOnednn, ScalesWidelySpreadScoresOfEitherSign) {
  // The softmax gets Q K^T unscaled and applies the scale itself: with a negative scale its
  // reference score must be the smallest raw score, or scale * (s - m) reaches hundreds and
  // exp overflows. Scores here spread over about +-100.
  if (active_cpu_isa() < CpuIsa::Avx512) GTEST_SKIP() << "bf16 oneDNN matmul needs avx512";
  auto rng = make_rng();
  const Tensor q = random_uniform({1, 40, 2, 64}, DType::BF16, rng, -3.0f, 3.0f);
  const Tensor k = random_uniform({1, 300, 2, 64}, DType::BF16, rng, -3.0f, 3.0f);
  const Tensor v = random_uniform({1, 300, 2, 64}, DType::BF16, rng);
  expect_onednn_bf16_matches_reference(q, k, v, {-1.0, 1.0});
}

TEST(AttentionOnednn, MovesItsShiftAcrossKeyChunksForEitherSign) {
  // The oneDNN path runs 512 keys at a time with an online softmax: here the keys of each later
  // chunk are larger (1300 keys: chunks of 512, 512 and 276), so every row's largest scale * s
  // moves up by far more than the shift's slack (2^8) at each chunk, for either sign of the
  // scale, and the output summed so far must be rescaled each time.
  if (active_cpu_isa() < CpuIsa::Avx512) GTEST_SKIP() << "bf16 oneDNN matmul needs avx512";
  auto rng = make_rng();
  const int64_t skv = 1300, d = 64;
  const Tensor q = random_uniform({1, 40, 2, d}, DType::BF16, rng, -1.0f, 1.0f);
  Tensor k = random_uniform({1, skv, 2, d}, DType::F32, rng, -1.0f, 1.0f);
  for (int64_t j = 0; j < skv; ++j)
    for (int64_t i = 0; i < 2 * d; ++i)
      k.data<float>()[j * 2 * d + i] *= j < 512 ? 0.1f : j < 1024 ? 1.0f : 4.0f;
  k = k.to(DType::BF16);
  const Tensor v = random_uniform({1, skv, 2, d}, DType::BF16, rng);
  expect_onednn_bf16_matches_reference(q, k, v, {-0.5, 0.5});
}

TEST(AttentionOnednn, StaysCorrectPastItsPrimitiveCache) {
  // One key count per prompt length (Qwen-Image drops masked text): more shapes than the cache
  // keeps (64), each result still the reference's, the cache starting again on the way.
  auto rng = make_rng();
  const DType dtype = active_cpu_isa() >= CpuIsa::Avx512 ? DType::BF16 : DType::F32;
  for (int64_t skv = 1; skv <= 70; ++skv) {
    SCOPED_TRACE(skv);
    const Tensor q = random_uniform({1, 5, 2, 16}, dtype, rng);
    const Tensor k = random_uniform({1, skv, 2, 16}, dtype, rng);
    const Tensor v = random_uniform({1, skv, 2, 16}, dtype, rng);
    Tensor out = Tensor::empty(q.shape(), DType::F32);
    attention_detail::attend_onednn(q, k, v, out, nullptr, 0.25f);
    EXPECT_LE(relative_error(out, reference(q, k, v, 0.25).out), dtype == DType::F32 ? 1e-5 : 1e-2);
  }
}

TEST(AttentionTile, PortableTilesCanComputeBf16InF32Too) {
  // The portable packing and load_q_tile widen bf16 into the f32 layout as the SIMD levels do (the
  // portable level itself keeps the bf16 pair layout).
  attention_detail::TileKernels widened = attention_detail::tile_kernels_for(CpuIsa::Portable);
  widened.bf16_pairs = false;
  auto rng = make_rng();
  const Tensor q = random_uniform({2, 50, 2, 13}, DType::BF16, rng);
  const Tensor k = random_uniform({2, 70, 2, 13}, DType::BF16, rng);
  const Tensor v = random_uniform({2, 70, 2, 13}, DType::BF16, rng);
  Tensor out = Tensor::empty(q.shape(), DType::F32);
  Tensor lse = Tensor::empty({2, 50, 2}, DType::F32);
  attention_detail::attend(widened, q, k, v, out, &lse, -0.3f);
  const Reference ref = reference(q, k, v, -0.3);
  EXPECT_LE(relative_error(out, ref.out), 1e-5);
  EXPECT_LE(lse_error(lse, ref.lse), 1e-5);
}

TEST(AttentionTile, Bf16IsComputedInF32WhereTheCpuHasNoBf16) {
  // At the avx512 and avx2 levels bf16 attention is f32 arithmetic on exactly widened inputs:
  // f32-accurate (large scores too, with the running max moving), where the bf16 pair tiles are
  // only bf16-accurate. Run through kernels::attention, so it checks the active level's choice.
  auto rng = make_rng();
  const int64_t b = 1, sq = 100, skv = 300, h = 2, d = 72;
  const Tensor q = random_uniform({b, sq, h, d}, DType::BF16, rng, -8.0f, 8.0f);
  const Tensor k = random_uniform({b, skv, h, d}, DType::BF16, rng, -8.0f, 8.0f);
  const Tensor v = random_uniform({b, skv, h, d}, DType::BF16, rng);
  Tensor out = Tensor::empty(q.shape(), DType::F32);
  Tensor lse = Tensor::empty({b, sq, h}, DType::F32);
  attention(q, k, v, out, &lse);
  const Reference ref = reference(q, k, v, 0.0);
  const double err = relative_error(out, ref.out);
  SCOPED_TRACE(str_cat(attention_tile_implementation(DType::BF16), ": error ", err));
  if (expected_tiles(tile_level()).bf16_in_f32)
    EXPECT_LE(err, 1e-5);  // measured ~5e-7; the bf16 pair tiles give ~5e-4
  else
    EXPECT_LE(err, 1e-2);
  EXPECT_LE(lse_error(lse, ref.lse), 1e-5);
}

TEST(AttentionMerge, HandlesEmptySidesWithoutNan) {
  // Rows: (a, b) = (finite, finite), (finite, empty), (empty, finite), (empty, empty).
  const float inf = std::numeric_limits<float>::infinity();
  const float la[4] = {0.5f, 2.0f, -inf, -inf}, lb[4] = {1.5f, -inf, -3.0f, -inf};
  const int64_t d = 5;
  Tensor out = Tensor::empty({1, 4, 1, d}, DType::F32), out_b = out.clone();
  Tensor lse = Tensor::empty({1, 4, 1}, DType::F32), lse_b = lse.clone();
  for (int64_t r = 0; r < 4; ++r) {
    lse.data<float>()[r] = la[r];
    lse_b.data<float>()[r] = lb[r];
    for (int64_t i = 0; i < d; ++i) {
      out.data<float>()[r * d + i] = la[r] == -inf ? 0.0f : static_cast<float>(r + i);
      out_b.data<float>()[r * d + i] = lb[r] == -inf ? 0.0f : static_cast<float>(10 - i);
    }
  }
  const auto oa = to_doubles(out), ob = to_doubles(out_b);
  merge_attention(out, lse, out_b, lse_b);
  const auto got = to_doubles(out), got_lse = to_doubles(lse);
  // Row 0: the weighted mean with weights e^0.5 and e^1.5.
  const double wa = std::exp(0.5), wb = std::exp(1.5);
  EXPECT_NEAR(got_lse[0], std::log(wa + wb), 1e-6);
  for (int64_t i = 0; i < d; ++i) EXPECT_NEAR(got[i], (wa * oa[i] + wb * ob[i]) / (wa + wb), 1e-5);
  EXPECT_EQ(got_lse[1], 2.0);
  EXPECT_EQ(got_lse[2], -3.0);
  EXPECT_EQ(got_lse[3], -kInf);
  for (int64_t i = 0; i < d; ++i) {
    EXPECT_EQ(got[d + i], oa[d + i]);
    EXPECT_EQ(got[2 * d + i], ob[2 * d + i]);
    EXPECT_EQ(got[3 * d + i], 0.0);
  }
}

TEST(AttentionMerge, IsStableForFarApartLse) {
  // e^lse overflows f32 for either side here; the sigmoid form must not.
  Tensor out = Tensor::empty({1, 2, 1, 1}, DType::F32), out_b = out.clone();
  Tensor lse = Tensor::empty({1, 2, 1}, DType::F32), lse_b = lse.clone();
  lse.data<float>()[0] = 1000.0f, lse_b.data<float>()[0] = 990.0f;
  lse.data<float>()[1] = -990.0f, lse_b.data<float>()[1] = 1000.0f;
  out.data<float>()[0] = out.data<float>()[1] = 1.0f;
  out_b.data<float>()[0] = out_b.data<float>()[1] = 3.0f;
  merge_attention(out, lse, out_b, lse_b);
  const double w = 1.0 / (1.0 + std::exp(10.0));  // weight of b in row 0
  EXPECT_NEAR(out.data<float>()[0], 1.0 + 2.0 * w, 1e-6);
  EXPECT_NEAR(lse.data<float>()[0], 1000.0 + std::log1p(std::exp(-10.0)), 1e-4);
  EXPECT_NEAR(out.data<float>()[1], 3.0, 1e-6);
  EXPECT_NEAR(lse.data<float>()[1], 1000.0, 1e-4);
}

TEST(AttentionMerge, RejectsMismatchedShapes) {
  Tensor out = Tensor::zeros({1, 4, 2, 8}, DType::F32);
  Tensor lse = Tensor::zeros({1, 4, 2}, DType::F32);
  expect_error(
      [&] {
        merge_attention(out, lse, Tensor::zeros({1, 4, 2, 7}, DType::F32), lse);
      },
      {"out_b must have the shape of out", "f32[1, 4, 2, 7]"});
  Tensor bad_lse = Tensor::zeros({1, 4, 3}, DType::F32);
  expect_error([&] { merge_attention(out, bad_lse, out, lse); },
               {"lse must be f32[1, 4, 2]", "f32[1, 4, 3]"});
  Tensor bf16_out = Tensor::zeros({1, 4, 2, 8}, DType::BF16);
  expect_error([&] { merge_attention(bf16_out, lse, out, lse); },
               {"out must be f32", "bf16[1, 4, 2, 8]"});
  expect_error([&] { merge_attention(out, lse, out, bad_lse); }, {"lse_b must be f32"});
}

}  // namespace
}  // namespace paradiff::kernels
