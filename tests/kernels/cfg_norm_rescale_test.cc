// cfg_norm_rescale (Qwen-Image's true CFG with norm rescaling) against a double-precision
// reference.
#include "paradiff/kernels/cfg_norm_rescale.h"

#include <gtest/gtest.h>

#include <cmath>

#include "testing/test_util.h"

namespace paradiff::kernels {
namespace {

using testing::make_rng;
using testing::random_normal;
using testing::relative_error;
using testing::to_doubles;

std::vector<double> reference(const Tensor& cond, const Tensor& uncond, double scale) {
  const auto xc = to_doubles(cond), xu = to_doubles(uncond);
  const size_t c = static_cast<size_t>(cond.dim(-1));
  std::vector<double> ref(xc.size());
  for (size_t r = 0; r < xc.size() / c; ++r) {
    double cond_sq = 0.0, comb_sq = 0.0;
    for (size_t i = 0; i < c; ++i) {
      const double comb = xu[r * c + i] + scale * (xc[r * c + i] - xu[r * c + i]);
      cond_sq += xc[r * c + i] * xc[r * c + i];
      comb_sq += comb * comb;
      ref[r * c + i] = comb;
    }
    for (size_t i = 0; i < c; ++i) ref[r * c + i] *= std::sqrt(cond_sq) / std::sqrt(comb_sq);
  }
  return ref;
}

TEST(CfgNormRescale, MatchesReference) {
  auto rng = make_rng();
  // One channel, odd widths, Qwen-Image's 64 packed channels, and a size that runs threaded.
  for (auto [n, c] : {std::pair<int64_t, int64_t>{1, 1}, {7, 3}, {33, 17}, {5, 64}, {1024, 64}}) {
    for (float scale : {1.0f, 2.5f, 4.0f}) {
      const Tensor cond = random_normal({2, n, c}, DType::F32, rng, 1.0f);
      const Tensor uncond = random_normal({2, n, c}, DType::F32, rng, 1.0f);
      const auto ref = reference(cond, uncond, scale);
      Tensor out = Tensor::empty(cond.shape(), DType::F32);
      cfg_norm_rescale(cond, uncond, scale, out);
      EXPECT_LE(relative_error(out, ref), 2e-6) << n << "x" << c << " scale " << scale;
      // In place over either input.
      Tensor a = cond.clone();
      cfg_norm_rescale(a, uncond, scale, a);
      EXPECT_LE(relative_error(a, ref), 2e-6);
      Tensor b = uncond.clone();
      cfg_norm_rescale(cond, b, scale, b);
      EXPECT_LE(relative_error(b, ref), 2e-6);
    }
  }
}

TEST(CfgNormRescale, KeepsTheConditionalNormPerToken) {
  auto rng = make_rng();
  const Tensor cond = random_normal({4, 8}, DType::F32, rng, 2.0f);
  const Tensor uncond = random_normal({4, 8}, DType::F32, rng, 0.5f);
  Tensor out = Tensor::empty(cond.shape(), DType::F32);
  cfg_norm_rescale(cond, uncond, 6.0f, out);
  const auto c = to_doubles(cond), o = to_doubles(out);
  for (int r = 0; r < 4; ++r) {
    double nc = 0, no = 0;
    for (int i = 0; i < 8; ++i) {
      nc += c[r * 8 + i] * c[r * 8 + i];
      no += o[r * 8 + i] * o[r * 8 + i];
    }
    EXPECT_NEAR(std::sqrt(no), std::sqrt(nc), 1e-5 * std::sqrt(nc)) << "row " << r;
  }
}

TEST(CfgNormRescale, RefusesMismatchedShapes) {
  const Tensor a = Tensor::zeros({2, 4}, DType::F32);
  const Tensor b = Tensor::zeros({2, 5}, DType::F32);
  Tensor out = Tensor::empty({2, 4}, DType::F32);
  EXPECT_THROW(cfg_norm_rescale(a, b, 2.0f, out), Error);
}

}  // namespace
}  // namespace paradiff::kernels
