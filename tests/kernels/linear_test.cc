#include "paradiff/kernels/linear.h"

#include <gtest/gtest.h>

#include <cmath>

#include "paradiff/core/cpu_isa.h"
#include "paradiff/core/memory.h"
#include "paradiff/core/threads.h"
#include "paradiff/kernels/cpu/bf16_rows_kernel.h"
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
    // bf16 weights, fp32 accumulation: compare with the reference on bf16-rounded operands.
    Linear lb(w.to(DType::BF16), b, DType::BF16);
    const Tensor xb = x.to(DType::BF16);
    const auto ref_b = reference(xb, w.to(DType::BF16), b, act);
    EXPECT_LE(relative_error(lb.forward(xb, DType::F32, act), ref_b), 1e-5);
    // f32 input to a bf16 layer: rounded to bf16 where bf16 is native, used as it is where the
    // layer computes in fp32; bf16 output is rounded.
    const auto ref_x =
        lb.mode() == GemmMode::Bf16 ? ref_b : reference(x, w.to(DType::BF16), b, act);
    EXPECT_LE(relative_error(lb.forward(x, DType::F32, act), ref_x), 1e-5);
    EXPECT_LE(relative_error(lb.forward(x, DType::BF16, act), ref_x), 8e-3);
  }
}

INSTANTIATE_TEST_SUITE_P(OddSizes, LinearTest,
                         ::testing::Values(LinearCase{1, 1, 1, 1}, LinearCase{1, 7, 13, 5},
                                           LinearCase{2, 33, 65, 129}, LinearCase{1, 130, 96, 257},
                                           LinearCase{3, 17, 300, 48},
                                           // few rows, many columns (the direct bf16 path)
                                           LinearCase{2, 6, 70, 1100},
                                           // K >= 4 N and over 512 rows: native bf16 GEMMs run
                                           // 512 rows per oneDNN call (onednn_linear.cc)
                                           LinearCase{2, 550, 256, 60}));

// A bf16 layer runs native bf16 where the active level has it and otherwise keeps bf16 weights
// (half the bytes of fp32) and computes in fp32 (ctest runs this under PARADIFF_MAX_ISA=avx2 and
// avx512 as well as uncapped).
TEST(Linear, Bf16StoredInBf16AndComputedInF32WithoutNativeBf16) {
  auto rng = make_rng();
  const int64_t in = 256, out = 192;
  const Tensor w = random_uniform({out, in}, DType::F32, rng);
  const Linear f32(w, Tensor(), DType::F32);
  EXPECT_EQ(f32.mode(), GemmMode::F32);
  const int64_t before = current_bytes();
  const Linear lb(w, Tensor(), DType::BF16);
  const int64_t held = current_bytes() - before;
  EXPECT_EQ(lb.compute_dtype(), DType::BF16);
  EXPECT_EQ(lb.mode(), native_bf16() ? GemmMode::Bf16 : GemmMode::Bf16StoredF32);
  // The layer holds its weights in bf16 whichever way it computes: at most half of fp32's
  // packing (plus the layout's padding), and what the process holds grew by just that.
  EXPECT_LE(lb.weight_bytes() * 2, f32.weight_bytes() + 8192) << gemm_mode_name(lb.mode());
  EXPECT_GE(lb.weight_bytes(), static_cast<size_t>(in * out * 2));
  EXPECT_LE(held, static_cast<int64_t>(lb.weight_bytes()) + 4096);
  if (lb.mode() == GemmMode::Bf16StoredF32) {
    EXPECT_EQ(lb.weight_bytes() * 2, f32.weight_bytes());  // the fp32 packing, stored in bf16
  }
  // Its loops run at the active level (cpu/bf16_rows_body.h, compiled per level).
  const CpuIsa isa = active_cpu_isa();
  EXPECT_EQ(cpu::bf16_rows_kernel_level(), isa >= CpuIsa::Avx512 ? "avx512"
                                           : isa >= CpuIsa::Avx2 ? "avx2"
                                                                 : "portable");

  // The arithmetic: x = 1 + 2^-9 is not a bf16 value (8 significant bits) and W = 1 is. In fp32
  // every output is 16 (1 + 2^-9) exactly; bf16 operands round x to 1 first and give 16.
  Tensor x = Tensor::empty({3, 16}, DType::F32);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = 1 + 0x1p-9f;
  Tensor ones = Tensor::empty({4, 16}, DType::F32);
  for (int64_t i = 0; i < ones.numel(); ++i) ones.data<float>()[i] = 1;
  const Linear probe(ones, Tensor(), DType::BF16);
  const Tensor y = probe.forward(x);
  const float want = probe.mode() == GemmMode::Bf16 ? 16.0f : 16 * (1 + 0x1p-9f);
  for (int64_t i = 0; i < y.numel(); ++i) ASSERT_EQ(y.data<float>()[i], want) << i;
  // bf16 activations are the same values in both modes: exactly 16.
  const Tensor yb = probe.forward(x.to(DType::BF16));
  for (int64_t i = 0; i < yb.numel(); ++i) ASSERT_EQ(yb.data<float>()[i], 16.0f) << i;
}

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
  // 18 rows, and 2 (the few-row path of a bf16 layer computed in fp32).
  for (int64_t batch : {9, 1}) {
    Tensor x = random_uniform({2, batch, 37}, DType::F32, rng);
    Tensor out = random_uniform({2, batch, 21}, DType::F32, rng);
    std::vector<double> ref = reference(x, w, b, Activation::None);
    const auto before = to_doubles(out);
    for (size_t i = 0; i < ref.size(); ++i) ref[i] += before[i];
    for (DType compute : {DType::F32, DType::BF16}) {
      Tensor acc = out.clone();
      Linear lin(w, b, compute);
      lin.forward(x, acc, Activation::None, /*accumulate=*/true);
      EXPECT_LE(relative_error(acc, ref), compute == DType::F32 ? 1e-6 : 1e-2);
      // Into a bf16 output: the sum is rounded once.
      Tensor acc_b = out.to(DType::BF16);
      lin.forward(x, acc_b, Activation::None, /*accumulate=*/true);
      EXPECT_LE(relative_error(acc_b, ref), 1e-2);
    }
  }
}

// The row-chunked bf16 GEMMs (K >= 4 N, over 512 rows) add into the right rows: 1300 rows are
// 512 + 512 + 276, and every row's sum is checked.
TEST(Linear, AccumulateAddsToTheOutputWhenTheRowsAreCut) {
  auto rng = make_rng();
  Tensor w = random_uniform({24, 128}, DType::F32, rng, -0.2f, 0.2f);
  Tensor b = random_uniform({24}, DType::F32, rng);
  Tensor x = random_uniform({1300, 128}, DType::F32, rng);
  Tensor out = random_uniform({1300, 24}, DType::F32, rng);
  Linear lin(w.to(DType::BF16), b, DType::BF16);
  const Tensor xb = x.to(DType::BF16);
  std::vector<double> ref = reference(xb, w.to(DType::BF16), b, Activation::None);
  const auto before = to_doubles(out);
  for (size_t i = 0; i < ref.size(); ++i) ref[i] += before[i];
  Tensor acc = out.clone();
  lin.forward(xb, acc, Activation::None, /*accumulate=*/true);
  EXPECT_LE(relative_error(acc, ref), 1e-5) << gemm_mode_name(lin.mode());
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
