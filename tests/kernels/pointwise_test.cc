// The pointwise functions (text encoders' activations, fills, sums and affine maps) against
// double-precision references.
#include "paradiff/kernels/pointwise.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "testing/test_util.h"

namespace paradiff::kernels {
namespace {

using testing::make_rng;
using testing::random_uniform;
using testing::relative_error;
using testing::to_doubles;

class PointwiseTest : public ::testing::TestWithParam<DType> {};

TEST_P(PointwiseTest, MatchDoubleReferences) {
  const DType dtype = GetParam();
  auto rng = make_rng();
  // 10007 elements: several chunks of the parallel loop and a tail.
  const Tensor x = random_uniform({10007}, dtype, rng, -12.0f, 12.0f);
  const Tensor y = random_uniform({10007}, dtype, rng, -3.0f, 3.0f);
  const auto xs = to_doubles(x), ys = to_doubles(y);
  std::vector<double> gelu(xs.size()), quick(xs.size()), rl(xs.size()), prod(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    gelu[i] = 0.5 * xs[i] * (1 + std::erf(xs[i] / std::sqrt(2.0)));
    quick[i] = xs[i] / (1 + std::exp(-1.702 * xs[i]));
    rl[i] = std::max(xs[i], 0.0);
    prod[i] = xs[i] * ys[i];
  }
  const double tol = dtype == DType::F32 ? 1e-6 : 6e-3;
  Tensor out = Tensor::empty(x.shape(), dtype);
  gelu_erf(x, out);
  EXPECT_LE(relative_error(out, gelu), tol);
  quick_gelu(x, out);
  EXPECT_LE(relative_error(out, quick), tol);
  relu(x, out);
  EXPECT_LE(relative_error(out, rl), tol);
  multiply(x, y, out);
  EXPECT_LE(relative_error(out, prod), tol);
  // In place, and with a bf16 input written to an f32 output.
  Tensor inplace = x.clone();
  quick_gelu(inplace, inplace);
  EXPECT_LE(relative_error(inplace, quick), tol);
  Tensor f32 = Tensor::empty(x.shape(), DType::F32);
  gelu_erf(x, f32);
  EXPECT_LE(relative_error(f32, gelu), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, PointwiseTest, ::testing::Values(DType::F32, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(Pointwise, ExtremesNanAndShapes) {
  Tensor x = Tensor::empty({5}, DType::F32);
  float* p = x.data<float>();
  p[0] = -1e30f, p[1] = 1e30f, p[2] = -100.0f, p[3] = NAN, p[4] = 0.0f;
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  for (auto fn : {gelu_erf, quick_gelu, relu}) {
    fn(x, out);
    EXPECT_EQ(out.data<float>()[0], 0.0f);
    EXPECT_EQ(out.data<float>()[1], 1e30f);
    EXPECT_TRUE(std::isnan(out.data<float>()[3]));
    EXPECT_EQ(out.data<float>()[4], 0.0f);
  }
  Tensor wrong = Tensor::empty({4}, DType::F32);
  EXPECT_THROW(relu(x, wrong), Error);
  EXPECT_THROW(multiply(x, wrong, out), Error);
  EXPECT_THROW(quick_gelu(Tensor::zeros({5}, DType::I64), out), Error);
}

class AffineTest : public ::testing::TestWithParam<DType> {};

TEST_P(AffineTest, AddScaleClampAndFillMatchDoubleReferences) {
  const DType dtype = GetParam();
  auto rng = make_rng();
  const Tensor x = random_uniform({10007}, dtype, rng, -3.0f, 3.0f);
  const Tensor y = random_uniform({10007}, dtype, rng, -3.0f, 3.0f);
  const auto xs = to_doubles(x), ys = to_doubles(y);
  std::vector<double> sum(xs.size()), scaled(xs.size()), clamped(xs.size()), post(xs.size());
  std::vector<double> quotient(xs.size()), shifted(xs.size()), e(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    sum[i] = xs[i] + ys[i];
    scaled[i] = xs[i] * 1000.0;
    quotient[i] = xs[i] / 0.3611;
    shifted[i] = xs[i] - 0.1159;
    e[i] = std::exp(xs[i]);
    clamped[i] = std::clamp(xs[i], -1.5, 2.0);
    post[i] = std::clamp(xs[i] / 2 + 0.5, 0.0, 1.0);  // diffusers' image postprocess
  }
  const double tol = dtype == DType::F32 ? 1e-6 : 6e-3;
  Tensor out = Tensor::empty(x.shape(), dtype);
  add(x, y, out);
  EXPECT_LE(relative_error(out, sum), tol);
  scale(x, 1000.0f, out);
  EXPECT_LE(relative_error(out, scaled), tol);
  divide_scalar(x, 0.3611f, out);
  EXPECT_LE(relative_error(out, quotient), tol);
  add_scalar(x, -0.1159f, out);
  EXPECT_LE(relative_error(out, shifted), tol);
  exp(x, out);
  EXPECT_LE(relative_error(out, e), tol);
  clamp(x, -1.5f, 2.0f, out);
  EXPECT_LE(relative_error(out, clamped), tol);
  scale_shift_clamp(x, 0.5f, 0.5f, 0.0f, 1.0f, out);
  EXPECT_LE(relative_error(out, post), tol);
  fill(out, 3.5f);
  EXPECT_LE(relative_error(out, std::vector<double>(xs.size(), 3.5)), 0.0);
  // In place, and with a bf16 input written to an f32 output.
  Tensor inplace = x.clone();
  add(inplace, y, inplace);
  EXPECT_LE(relative_error(inplace, sum), tol);
  Tensor f32 = Tensor::empty(x.shape(), DType::F32);
  scale_shift_clamp(x, 0.5f, 0.5f, 0.0f, 1.0f, f32);
  EXPECT_LE(relative_error(f32, post), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, AffineTest, ::testing::Values(DType::F32, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(Pointwise, ClampKeepsNanAndSignedZeroAndRefusesBadBounds) {
  Tensor x = Tensor::empty({4}, DType::F32);
  float* p = x.data<float>();
  p[0] = NAN, p[1] = -0.0f, p[2] = -1e30f, p[3] = 1e30f;
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  clamp(x, -30.0f, 20.0f, out);
  EXPECT_TRUE(std::isnan(out.data<float>()[0]));
  EXPECT_TRUE(std::signbit(out.data<float>()[1]));
  EXPECT_EQ(out.data<float>()[2], -30.0f);
  EXPECT_EQ(out.data<float>()[3], 20.0f);
  scale_shift_clamp(x, 0.5f, 0.5f, 0.0f, 1.0f, out);
  EXPECT_TRUE(std::isnan(out.data<float>()[0]));
  EXPECT_EQ(out.data<float>()[2], 0.0f);
  EXPECT_EQ(out.data<float>()[3], 1.0f);
  EXPECT_THROW(clamp(x, 1.0f, 0.0f, out), Error);
  Tensor i64 = Tensor::zeros({4}, DType::I64);
  EXPECT_THROW(fill(i64, 1.0f), Error);
  Tensor wrong = Tensor::empty({3}, DType::F32);
  EXPECT_THROW(add(x, wrong, out), Error);
}

}  // namespace
}  // namespace paradiff::kernels

namespace paradiff::kernels {
namespace {

TEST(AllFinite, FindsNanAndInfinityAnywhereInBothDtypes) {
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (int64_t n : {int64_t{1}, int64_t{4096}, int64_t{10001}}) {
      Tensor t = Tensor::zeros({n}, dtype);
      EXPECT_TRUE(all_finite(t));
      for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
        Tensor u = Tensor::zeros({n}, DType::F32);
        u.data<float>()[n - 1] = bad;
        EXPECT_FALSE(all_finite(u.to(dtype))) << n << " " << bad;
      }
    }
  }
}

}  // namespace
}  // namespace paradiff::kernels
