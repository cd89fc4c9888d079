// GroupNorm (+ fused SiLU) on channels-last tensors against a double-precision reference.
#include "paradiff/kernels/group_norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <span>

#include "paradiff/core/threads.h"
#include "testing/test_util.h"

namespace paradiff::kernels {
namespace {

using testing::make_rng;
using testing::random_normal;
using testing::random_uniform;
using testing::relative_error;
using testing::to_doubles;

std::vector<double> reference(const Tensor& x, int64_t groups, const Tensor& gamma,
                              const Tensor& beta, double eps, bool silu) {
  const auto xs = to_doubles(x), gs = to_doubles(gamma), bs = to_doubles(beta);
  const int64_t n = x.dim(0), c = x.dim(-1), p = x.numel() / (n * c), cg = c / groups;
  std::vector<double> out(xs.size());
  for (int64_t b = 0; b < n; ++b)
    for (int64_t g = 0; g < groups; ++g) {
      double mean = 0, var = 0;
      for (int64_t i = 0; i < p; ++i)
        for (int64_t k = g * cg; k < (g + 1) * cg; ++k) mean += xs[(b * p + i) * c + k];
      mean /= static_cast<double>(p * cg);
      for (int64_t i = 0; i < p; ++i)
        for (int64_t k = g * cg; k < (g + 1) * cg; ++k) {
          const double d = xs[(b * p + i) * c + k] - mean;
          var += d * d;
        }
      var /= static_cast<double>(p * cg);
      for (int64_t i = 0; i < p; ++i)
        for (int64_t k = g * cg; k < (g + 1) * cg; ++k) {
          const size_t at = static_cast<size_t>((b * p + i) * c + k);
          double y = (xs[at] - mean) / std::sqrt(var + eps) * gs[k] + bs[k];
          if (silu) y = y / (1 + std::exp(-y));
          out[at] = y;
        }
    }
  return out;
}

struct GroupNormCase {
  int64_t n, h, w, c, groups;
};

class GroupNormTest : public ::testing::TestWithParam<GroupNormCase> {};

TEST_P(GroupNormTest, MatchesDoubleReference) {
  const auto k = GetParam();
  auto rng = make_rng();
  // An offset mean and a wide spread: the statistics must not lose precision.
  Tensor x = random_normal({k.n, k.h, k.w, k.c}, DType::F32, rng, 3.0f);
  for (float& v : std::span(x.data<float>(), x.numel())) v += 20.0f;
  const Tensor gamma = random_uniform({k.c}, DType::F32, rng, 0.5f, 1.5f);
  const Tensor beta = random_uniform({k.c}, DType::F32, rng);
  for (bool silu : {false, true}) {
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      Tensor out = Tensor::empty(x.shape(), DType::F32);
      group_norm(x, k.groups, gamma, beta, 1e-6f, out, silu);
      EXPECT_LE(relative_error(out, reference(x, k.groups, gamma, beta, 1e-6, silu)), 3e-6)
          << "silu " << silu << " threads " << threads;
    }
  }
  set_num_threads(2);
  // In place, and with bf16 parameters (as stored in real checkpoints).
  const auto ref = reference(x, k.groups, gamma.to(DType::BF16), beta.to(DType::BF16), 1e-6, true);
  Tensor inplace = x.clone();
  group_norm(inplace, k.groups, gamma.to(DType::BF16), beta.to(DType::BF16), 1e-6f, inplace, true);
  EXPECT_LE(relative_error(inplace, ref), 3e-6);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GroupNormTest,
    ::testing::Values(GroupNormCase{1, 13, 9, 32, 8}, GroupNormCase{2, 7, 5, 96, 32},
                      GroupNormCase{1, 2, 1, 6, 2}, GroupNormCase{1, 3, 17, 45, 5},
                      GroupNormCase{3, 4, 4, 8, 1}, GroupNormCase{1, 64, 48, 64, 32}));

TEST(GroupNorm, RejectsBadShapes) {
  auto rng = make_rng();
  const Tensor x = random_uniform({1, 4, 4, 12}, DType::F32, rng);
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  const Tensor g = random_uniform({12}, DType::F32, rng);
  try {
    group_norm(x, 5, g, g, 1e-6f, out);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("12 channels cannot be split into 5 groups"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(group_norm(x, 4, random_uniform({11}, DType::F32, rng), g, 1e-6f, out), Error);
  Tensor wrong = Tensor::empty({1, 4, 4, 11}, DType::F32);
  EXPECT_THROW(group_norm(x, 4, g, g, 1e-6f, wrong), Error);
  EXPECT_THROW(group_norm(x.to(DType::BF16), 4, g, g, 1e-6f, out), Error);
}

}  // namespace
}  // namespace paradiff::kernels
