// l2_norm (the Qwen-Image VAE's channel norm, optionally fused with SiLU) against a
// double-precision reference.
#include "paradiff/kernels/l2_norm.h"

#include <gtest/gtest.h>

#include <cmath>

#include "testing/test_util.h"

namespace paradiff::kernels {
namespace {

using testing::make_rng;
using testing::random_normal;
using testing::random_uniform;
using testing::relative_error;
using testing::to_doubles;

std::vector<double> reference(const Tensor& x, const Tensor& gamma, double scale, bool silu) {
  const auto xs = to_doubles(x), gs = to_doubles(gamma);
  const size_t c = gs.size();
  std::vector<double> ref(xs.size());
  for (size_t r = 0; r < xs.size() / c; ++r) {
    double sq = 0.0;
    for (size_t i = 0; i < c; ++i) sq += xs[r * c + i] * xs[r * c + i];
    const double norm = std::max(std::sqrt(sq), 1e-12);
    for (size_t i = 0; i < c; ++i) {
      const double v = xs[r * c + i] / norm * scale * gs[i];
      ref[r * c + i] = silu ? v / (1.0 + std::exp(-v)) : v;
    }
  }
  return ref;
}

TEST(L2Norm, MatchesReference) {
  auto rng = make_rng();
  // Odd channel counts (tails beside the 16-wide vector loop), 1 channel, and sizes large enough
  // to run threaded.
  for (auto [n, c] : {std::pair<int64_t, int64_t>{1, 1}, {7, 3}, {33, 17}, {5, 96}, {2048, 40}}) {
    for (bool silu : {false, true}) {
      const Tensor x = random_normal({n, 2, c}, DType::F32, rng, 3.0f);
      const Tensor gamma = random_uniform({c}, DType::F32, rng, 0.5f, 1.5f);
      const float scale = std::sqrt(static_cast<float>(c));
      Tensor out = Tensor::empty(x.shape(), DType::F32);
      l2_norm(x, gamma, scale, out, silu);
      const auto ref = reference(x, gamma, scale, silu);
      EXPECT_LE(relative_error(out, ref), 2e-6) << n << "x" << c << " silu " << silu;
      // In place.
      Tensor y = x.clone();
      l2_norm(y, gamma, scale, y, silu);
      EXPECT_LE(relative_error(y, ref), 2e-6);
    }
  }
}

TEST(L2Norm, ZeroAndTinyVectorsFollowTorchsClamp) {
  // A zero vector stays zero (no NaN); a vector with norm below 1e-12 is divided by 1e-12.
  Tensor x = Tensor::zeros({2, 3}, DType::F32);
  x.data<float>()[3] = 1e-20f;
  Tensor gamma = Tensor::empty({3}, DType::F32);
  for (int i = 0; i < 3; ++i) gamma.data<float>()[i] = 1.0f;
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  l2_norm(x, gamma, 2.0f, out);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(out.data<float>()[i], 0.0f);
  EXPECT_NEAR(out.data<float>()[3], 2e-8f, 1e-13f);
}

TEST(L2Norm, RejectsBadArguments) {
  const Tensor x = Tensor::zeros({4, 8}, DType::F32);
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  EXPECT_THROW(l2_norm(x, Tensor::zeros({7}, DType::F32), 1.0f, out), Error);
  Tensor wrong = Tensor::empty({4, 7}, DType::F32);
  EXPECT_THROW(l2_norm(x, Tensor::zeros({8}, DType::F32), 1.0f, wrong), Error);
  EXPECT_THROW(l2_norm(x.to(DType::BF16), Tensor::zeros({8}, DType::F32), 1.0f, out), Error);
  EXPECT_THROW(l2_norm(x, Tensor::zeros({8}, DType::F32), NAN, out), Error);
}

}  // namespace
}  // namespace paradiff::kernels
