// The text encoders' pointwise functions against double-precision references.
#include "paradiff/kernels/pointwise.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace paradiff::kernels
