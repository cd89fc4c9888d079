#include "paradiff/kernels/linear.h"

#include <gtest/gtest.h>

#include <cmath>

#include "paradiff/core/threads.h"
#include "testing/test_util.h"

namespace paradiff::kernels {
namespace {

using testing::make_rng;
using testing::random_uniform;
using testing::relative_error;
using testing::to_doubles;

// y[m, o] = sum_i x[m, i] W[o, i] + b[o], then the activation, in double.
std::vector<double> reference(const Tensor& x, const Tensor& w, const Tensor& b, Activation act) {
  const auto xs = to_doubles(x), ws = to_doubles(w);
  const std::vector<double> bs = b.defined() ? to_doubles(b) : std::vector<double>();
  const int64_t in = w.dim(1), out = w.dim(0), m = x.numel() / in;
  std::vector<double> y(static_cast<size_t>(m * out));
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double acc = bs.empty() ? 0.0 : bs[o];
      for (int64_t i = 0; i < in; ++i) acc += xs[r * in + i] * ws[o * in + i];
      if (act == Activation::GeluTanh)
        acc = 0.5 * acc * (1 + std::tanh(std::sqrt(2 / M_PI) * (acc + 0.044715 * acc * acc * acc)));
      if (act == Activation::Silu) acc = acc / (1 + std::exp(-acc));
      y[r * out + o] = acc;
    }
  }
  return y;
}

struct LinearCase {
  int64_t batch, rows, in, out;
};

class LinearTest : public ::testing::TestWithParam<LinearCase> {};

TEST_P(LinearTest, MatchesDoubleReferenceInF32AndBf16) {
  const auto c = GetParam();
  auto rng = make_rng();
  Tensor x = random_uniform({c.batch, c.rows, c.in}, DType::F32, rng);
  Tensor w = random_uniform({c.out, c.in}, DType::F32, rng, -0.2f, 0.2f);
  Tensor b = random_uniform({c.out}, DType::F32, rng);
  for (Activation act : {Activation::None, Activation::GeluTanh, Activation::Silu}) {
    // fp32: exact up to fp32 accumulation rounding.
    Linear f32(w, b, DType::F32);
    Tensor y = f32.forward(x, DType::F32, act);
    EXPECT_EQ(y.shape(), (Shape{c.batch, c.rows, c.out}));
    EXPECT_LE(relative_error(y, reference(x, w, b, act)), 1e-5);
    // bf16 operands, fp32 accumulation: compare with the reference on bf16-rounded operands.
    Linear lb(w.to(DType::BF16), b, DType::BF16);
    const Tensor xb = x.to(DType::BF16);
    const auto ref_b = reference(xb, w.to(DType::BF16), b, act);
    EXPECT_LE(relative_error(lb.forward(xb, DType::F32, act), ref_b), 1e-5);
    // f32 input to a bf16 layer is converted; bf16 output is rounded.
    EXPECT_LE(relative_error(lb.forward(x, DType::F32, act), ref_b), 1e-5);
    EXPECT_LE(relative_error(lb.forward(x, DType::BF16, act), ref_b), 8e-3);
  }
}

INSTANTIATE_TEST_SUITE_P(OddSizes, LinearTest,
                         ::testing::Values(LinearCase{1, 1, 1, 1}, LinearCase{1, 7, 13, 5},
                                           LinearCase{2, 33, 65, 129}, LinearCase{1, 130, 96, 257},
                                           LinearCase{3, 17, 300, 48}));

TEST(Linear, NoBiasAndManyRowCountsShareOnePacking) {
  auto rng = make_rng();
  Tensor w = random_uniform({19, 23}, DType::F32, rng);
  Linear lin(w, Tensor(), DType::F32);
  EXPECT_FALSE(lin.has_bias());
  for (int64_t rows : {1, 2, 77, 300}) {
    Tensor x = random_uniform({rows, 23}, DType::F32, rng);
    EXPECT_LE(relative_error(lin.forward(x), reference(x, w, Tensor(), Activation::None)), 1e-5)
        << rows << " rows";
  }
}

TEST(Linear, AccumulateAddsToTheOutput) {
  auto rng = make_rng();
  Tensor w = random_uniform({21, 37}, DType::F32, rng);
  Tensor b = random_uniform({21}, DType::F32, rng);
  Tensor x = random_uniform({2, 9, 37}, DType::F32, rng);
  Tensor out = random_uniform({2, 9, 21}, DType::F32, rng);
  std::vector<double> ref = reference(x, w, b, Activation::None);
  const auto before = to_doubles(out);
  for (size_t i = 0; i < ref.size(); ++i) ref[i] += before[i];
  for (DType compute : {DType::F32, DType::BF16}) {
    Tensor acc = out.clone();
    Linear lin(w, b, compute);
    lin.forward(x, acc, Activation::None, /*accumulate=*/true);
    EXPECT_LE(relative_error(acc, ref), compute == DType::F32 ? 1e-6 : 1e-2);
  }
}

TEST(Linear, ThreadCountChangesKeepResults) {
  auto rng = make_rng();
  Tensor w = random_uniform({64, 48}, DType::F32, rng);
  Tensor x = random_uniform({50, 48}, DType::F32, rng);
  Linear lin(w, Tensor(), DType::F32);
  const int saved = num_threads();
  set_num_threads(1);
  Tensor one = lin.forward(x);
  set_num_threads(2);
  Tensor two = lin.forward(x);
  set_num_threads(saved);
  EXPECT_LE(relative_error(one, two), 1e-6);
}

TEST(Linear, RejectsWrongShapesWithClearMessages) {
  auto rng = make_rng();
  Tensor w = random_uniform({8, 4}, DType::F32, rng);
  Linear lin(w, Tensor(), DType::F32);
  try {
    lin.forward(Tensor::zeros({3, 5}, DType::F32));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("last dim must be 4"), std::string::npos) << e.what();
  }
  Tensor wrong_out = Tensor::empty({3, 7}, DType::F32);
  EXPECT_THROW(lin.forward(Tensor::zeros({3, 4}, DType::F32), wrong_out), Error);
  EXPECT_THROW(Linear(w, Tensor::zeros({7}, DType::F32), DType::F32), Error);
  EXPECT_THROW(Linear(Tensor::zeros({8}, DType::F32), Tensor(), DType::F32), Error);
  EXPECT_THROW(Linear(w, Tensor(), DType::I64), Error);
  EXPECT_THROW(Linear().forward(Tensor::zeros({3, 4}, DType::F32)), Error);
}

TEST(Linear, NonFiniteInputPropagates) {
  auto rng = make_rng();
  Linear lin(random_uniform({4, 4}, DType::F32, rng), Tensor(), DType::F32);
  Tensor x = Tensor::zeros({1, 4}, DType::F32);
  x.data<float>()[2] = NAN;
  EXPECT_FALSE(testing::all_finite(lin.forward(x)));
}

}  // namespace
}  // namespace paradiff::kernels
