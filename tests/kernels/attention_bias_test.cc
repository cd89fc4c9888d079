// attention_with_bias against a naive double-precision reference: bias, causal mask, scale,
// bf16 inputs and outputs, odd sizes, Skv != Sq, and the shapes it must refuse.
#include "paradiff/kernels/attention_bias.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "testing/test_util.h"

namespace paradiff::kernels {
namespace {

using testing::make_rng;
using testing::random_normal;
using testing::relative_error;
using testing::to_doubles;

std::vector<double> reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                              bool causal, double scale) {
  const int64_t b = q.dim(0), sq = q.dim(1), h = q.dim(2), d = q.dim(3), skv = k.dim(1);
  const auto qd = to_doubles(q), kd = to_doubles(k), vd = to_doubles(v);
  const auto bd = bias.defined() ? to_doubles(bias) : std::vector<double>();
  std::vector<double> out(static_cast<size_t>(q.numel()), 0.0);
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t hi = 0; hi < h; ++hi)
      for (int64_t i = 0; i < sq; ++i) {
        const int64_t n = causal ? i + 1 : skv;
        std::vector<double> s(static_cast<size_t>(n));
        double max = -INFINITY;
        for (int64_t j = 0; j < n; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < d; ++c)
            dot += qd[((bi * sq + i) * h + hi) * d + c] * kd[((bi * skv + j) * h + hi) * d + c];
          s[j] = dot * scale + (bias.defined() ? bd[(hi * sq + i) * skv + j] : 0.0);
          max = std::max(max, s[j]);
        }
        double sum = 0;
        for (auto& x : s) sum += (x = std::exp(x - max));
        for (int64_t c = 0; c < d; ++c) {
          double acc = 0;
          for (int64_t j = 0; j < n; ++j) acc += s[j] * vd[((bi * skv + j) * h + hi) * d + c];
          out[((bi * sq + i) * h + hi) * d + c] = acc / sum;
        }
      }
  return out;
}

struct Case {
  int64_t b, sq, skv, h, d;
  bool bias, causal;
  float scale;
  DType in, out;
};

class AttentionBiasTest : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionBiasTest, MatchesDoubleReference) {
  const Case c = GetParam();
  auto rng = make_rng();
  const Tensor q = random_normal({c.b, c.sq, c.h, c.d}, c.in, rng);
  const Tensor k = random_normal({c.b, c.skv, c.h, c.d}, c.in, rng);
  const Tensor v = random_normal({c.b, c.skv, c.h, c.d}, c.in, rng);
  const Tensor bias = c.bias ? random_normal({c.h, c.sq, c.skv}, DType::F32, rng, 2.0f) : Tensor();
  Tensor out = Tensor::empty(q.shape(), c.out);
  attention_with_bias(q, k, v, bias, c.causal, c.scale, out);
  const double err = relative_error(out, reference(q, k, v, bias, c.causal, c.scale));
  // bf16 inputs are exact in the reference; only a bf16 output adds rounding.
  EXPECT_LE(err, c.out == DType::F32 ? 2e-6 : 5e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionBiasTest,
    ::testing::Values(Case{1, 77, 77, 3, 8, false, true, 0.35355339f, DType::F32, DType::F32},
                      Case{2, 33, 33, 4, 16, true, false, 1.0f, DType::F32, DType::F32},
                      Case{1, 19, 45, 2, 5, true, false, 0.7f, DType::F32, DType::F32},
                      Case{2, 17, 17, 5, 12, true, true, 1.0f, DType::BF16, DType::F32},
                      Case{1, 40, 40, 3, 64, true, false, 1.0f, DType::BF16, DType::BF16},
                      Case{3, 1, 1, 1, 1, false, true, 1.0f, DType::F32, DType::F32},
                      Case{1, 5, 300, 2, 7, false, false, -0.2f, DType::F32, DType::F32}));

TEST(AttentionBias, CausalRowsIgnoreLaterKeysAndEmptyKeysGiveZero) {
  auto rng = make_rng();
  Tensor q = random_normal({1, 6, 2, 4}, DType::F32, rng);
  Tensor k = random_normal({1, 6, 2, 4}, DType::F32, rng);
  Tensor v = random_normal({1, 6, 2, 4}, DType::F32, rng);
  Tensor out = Tensor::empty(q.shape(), DType::F32);
  attention_with_bias(q, k, v, Tensor(), true, 0.5f, out);
  // Row 0 attends to key 0 alone: its output is value 0.
  for (int64_t hc = 0; hc < 8; ++hc) EXPECT_FLOAT_EQ(out.data<float>()[hc], v.data<float>()[hc]);
  // Changing the last key and value leaves every earlier row alone.
  Tensor out2 = Tensor::empty(q.shape(), DType::F32);
  for (int64_t i = 5 * 8; i < 6 * 8; ++i) k.data<float>()[i] += 3, v.data<float>()[i] -= 1;
  attention_with_bias(q, k, v, Tensor(), true, 0.5f, out2);
  for (int64_t i = 0; i < 5 * 8; ++i) EXPECT_EQ(out.data<float>()[i], out2.data<float>()[i]);

  Tensor none = Tensor::empty({1, 0, 2, 4}, DType::F32);
  Tensor zeros_out = Tensor::empty(q.shape(), DType::F32);
  attention_with_bias(q, none, none, Tensor(), false, 1.0f, zeros_out);
  for (int64_t i = 0; i < zeros_out.numel(); ++i) EXPECT_EQ(zeros_out.data<float>()[i], 0.0f);
}

TEST(AttentionBias, LargeBiasesStayFinite) {
  auto rng = make_rng();
  const Tensor q = random_normal({1, 9, 1, 3}, DType::F32, rng);
  const Tensor k = random_normal({1, 9, 1, 3}, DType::F32, rng);
  const Tensor v = random_normal({1, 9, 1, 3}, DType::F32, rng);
  Tensor bias = random_normal({1, 9, 9}, DType::F32, rng, 500.0f);
  bias.data<float>()[3] = -std::numeric_limits<float>::infinity();  // a masked key
  Tensor out = Tensor::empty(q.shape(), DType::F32);
  attention_with_bias(q, k, v, bias, false, 1.0f, out);
  EXPECT_TRUE(testing::all_finite(out));
  EXPECT_LE(relative_error(out, reference(q, k, v, bias, false, 1.0)), 1e-5);
}

TEST(AttentionBias, RefusesMismatchedShapes) {
  const Tensor q = Tensor::zeros({1, 4, 2, 8}, DType::F32);
  const Tensor k = Tensor::zeros({1, 5, 2, 8}, DType::F32);
  Tensor out = Tensor::empty(q.shape(), DType::F32);
  EXPECT_THROW(attention_with_bias(q, k, k, Tensor(), true, 1.0f, out), Error);  // causal, 4 vs 5
  EXPECT_THROW(attention_with_bias(q, k, k, Tensor::zeros({2, 4, 4}, DType::F32), false, 1.0f, out),
               Error);
  EXPECT_THROW(
      attention_with_bias(q, Tensor::zeros({1, 5, 2, 7}, DType::F32),
                          Tensor::zeros({1, 5, 2, 7}, DType::F32), Tensor(), false, 1.0f, out),
      Error);
  EXPECT_THROW(
      attention_with_bias(q, k.to(DType::BF16), k.to(DType::BF16), Tensor(), false, 1.0f, out),
      Error);
  Tensor wrong = Tensor::empty({1, 4, 2, 7}, DType::F32);
  EXPECT_THROW(attention_with_bias(q, k, k, Tensor(), false, 1.0f, wrong), Error);
  EXPECT_THROW(attention_with_bias(q, k, k, Tensor(), false, NAN, out), Error);
}

}  // namespace
}  // namespace paradiff::kernels
