#include "paradiff/kernels/activations.h"

#include <gtest/gtest.h>

#include <cmath>

#include "testing/test_util.h"

namespace paradiff::kernels {
namespace {

using testing::make_rng;
using testing::random_uniform;
using testing::relative_error;
using testing::to_doubles;

double gelu_ref(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}
double silu_ref(double x) {
  return x / (1 + std::exp(-x));
}

class ActivationTest : public ::testing::TestWithParam<DType> {};

TEST_P(ActivationTest, MatchDoubleReferenceOverAWideRange) {
  const DType out_dtype = GetParam();
  auto rng = make_rng();
  // 10007 elements: several vector chunks and a scalar tail; range covers saturation.
  Tensor x = random_uniform({10007}, DType::F32, rng, -30.0f, 30.0f);
  const auto xs = to_doubles(x);
  std::vector<double> g(xs.size()), s(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) g[i] = gelu_ref(xs[i]), s[i] = silu_ref(xs[i]);
  Tensor out = Tensor::empty(x.shape(), out_dtype);
  const double tol = out_dtype == DType::F32 ? 1e-6 : 6e-3;
  gelu_tanh(x, out);
  EXPECT_LE(relative_error(out, g), tol);
  silu(x, out);
  EXPECT_LE(relative_error(out, s), tol);
  // Small inputs, where the tanh form loses the most: absolute error must stay tiny.
  Tensor small = random_uniform({1000}, DType::F32, rng, -1e-3f, 1e-3f);
  Tensor small_out = Tensor::empty(small.shape(), DType::F32);
  gelu_tanh(small, small_out);
  const auto ss = to_doubles(small);
  for (size_t i = 0; i < ss.size(); ++i)
    ASSERT_NEAR(small_out.data<float>()[i], gelu_ref(ss[i]), 1e-9) << ss[i];
}

INSTANTIATE_TEST_SUITE_P(OutputDtypes, ActivationTest, ::testing::Values(DType::F32, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(Activations, ExtremesStayFiniteAndNanPropagates) {
  Tensor x = Tensor::empty({4}, DType::F32);
  float* p = x.data<float>();
  p[0] = -1e30f, p[1] = 1e30f, p[2] = -100.0f, p[3] = 100.0f;
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  silu(x, out);
  EXPECT_TRUE(testing::all_finite(out));
  EXPECT_FLOAT_EQ(out.data<float>()[3], 100.0f);
  gelu_tanh(x, out);
  EXPECT_TRUE(testing::all_finite(out));
  EXPECT_FLOAT_EQ(out.data<float>()[1], 1e30f);
  // NaN through the vector path (index 5 of 40) and the scalar tail (index 37).
  Tensor n = Tensor::zeros({40}, DType::F32), n_out = Tensor::empty({40}, DType::F32);
  n.data<float>()[5] = NAN;
  n.data<float>()[37] = NAN;
  for (auto fn : {gelu_tanh, silu}) {
    fn(n, n_out);
    EXPECT_TRUE(std::isnan(n_out.data<float>()[5]));
    EXPECT_TRUE(std::isnan(n_out.data<float>()[37]));
    EXPECT_EQ(n_out.data<float>()[6], 0.0f);
  }
  Tensor wrong = Tensor::empty({5}, DType::F32);
  EXPECT_THROW(silu(x, wrong), Error);
}

}  // namespace
}  // namespace paradiff::kernels
