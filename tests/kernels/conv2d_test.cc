// Conv2d (oneDNN, channels-last, prepacked weights) against a naive double-precision
// convolution, with odd sizes, strides, asymmetric padding and the fused residual sum.
#include "paradiff/kernels/conv2d.h"

#include <gtest/gtest.h>

#include "paradiff/core/cpu_isa.h"
#include "paradiff/core/threads.h"
#include "testing/test_util.h"

namespace paradiff::kernels {
namespace {

using testing::make_rng;
using testing::random_uniform;
using testing::relative_error;
using testing::to_doubles;

// out[n, y, x, o] = b[o] + sum_{i, ky, kx} in[n, y·s + ky - top, x·s + kx - left, i] w[o, i, ky,
// kx]
std::vector<double> reference(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride,
                              Padding2d pad, int64_t ho, int64_t wo) {
  const auto xs = to_doubles(x), ws = to_doubles(w);
  const std::vector<double> bs = b.defined() ? to_doubles(b) : std::vector<double>();
  const int64_t n = x.dim(0), h = x.dim(1), wd = x.dim(2), ci = x.dim(3);
  const int64_t co = w.dim(0), kh = w.dim(2), kw = w.dim(3);
  std::vector<double> out(static_cast<size_t>(n * ho * wo * co));
  for (int64_t b0 = 0; b0 < n; ++b0)
    for (int64_t oy = 0; oy < ho; ++oy)
      for (int64_t ox = 0; ox < wo; ++ox)
        for (int64_t o = 0; o < co; ++o) {
          double acc = bs.empty() ? 0.0 : bs[o];
          for (int64_t ky = 0; ky < kh; ++ky) {
            const int64_t iy = oy * stride + ky - pad.top;
            if (iy < 0 || iy >= h) continue;
            for (int64_t kx = 0; kx < kw; ++kx) {
              const int64_t ix = ox * stride + kx - pad.left;
              if (ix < 0 || ix >= wd) continue;
              for (int64_t i = 0; i < ci; ++i)
                acc +=
                    xs[((b0 * h + iy) * wd + ix) * ci + i] * ws[((o * ci + i) * kh + ky) * kw + kx];
            }
          }
          out[((b0 * ho + oy) * wo + ox) * co + o] = acc;
        }
  return out;
}

struct ConvCase {
  int64_t n, h, w, in, out, k, stride;
  Padding2d pad;
  bool bias;
};

class Conv2dTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dTest, MatchesDoubleReference) {
  const ConvCase c = GetParam();
  auto rng = make_rng();
  const Tensor x = random_uniform({c.n, c.h, c.w, c.in}, DType::F32, rng);
  const Tensor w = random_uniform({c.out, c.in, c.k, c.k}, DType::F32, rng, -0.3f, 0.3f);
  const Tensor b = c.bias ? random_uniform({c.out}, DType::F32, rng) : Tensor();
  const Conv2d conv(w, b, c.stride, c.pad);
  const int64_t ho = conv.out_height(c.h), wo = conv.out_width(c.w);
  const auto ref = reference(x, w, b, c.stride, c.pad, ho, wo);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    const Tensor y = conv.forward(x);
    ASSERT_EQ(y.shape(), (Shape{c.n, ho, wo, c.out}));
    EXPECT_LE(relative_error(y, ref), 2e-6) << "threads " << threads;
    // accumulate: out = residual + conv(x).
    const Tensor residual = random_uniform(y.shape(), DType::F32, rng);
    Tensor acc = residual.clone();
    conv.forward(x, acc, /*accumulate=*/true);
    auto ref_acc = ref;
    const auto rs = to_doubles(residual);
    for (size_t i = 0; i < ref_acc.size(); ++i) ref_acc[i] += rs[i];
    EXPECT_LE(relative_error(acc, ref_acc), 2e-6);
  }
  set_num_threads(2);
}

// bf16 weights: native bf16 rounds the input too; without native bf16 the weights are stored in
// bf16 and the convolution runs in fp32 on the unrounded input. Both against the double
// reference on the values each mode multiplies.
TEST_P(Conv2dTest, Bf16MatchesDoubleReferenceOnItsRoundedOperands) {
  const ConvCase c = GetParam();
  auto rng = make_rng();
  const Tensor x = random_uniform({c.n, c.h, c.w, c.in}, DType::F32, rng);
  const Tensor w = random_uniform({c.out, c.in, c.k, c.k}, DType::F32, rng, -0.3f, 0.3f);
  const Tensor b = c.bias ? random_uniform({c.out}, DType::F32, rng) : Tensor();
  const Conv2d conv(w, b, c.stride, c.pad, DType::BF16);
  const Conv2d f32(w, b, c.stride, c.pad);
  EXPECT_EQ(conv.mode(), native_bf16() ? GemmMode::Bf16 : GemmMode::Bf16StoredF32);
  // Without native bf16: fp32's packing, stored in bf16 (native bf16 packings pad channels to
  // their own blocks, which can outweigh the halving for channel counts this small).
  if (conv.mode() == GemmMode::Bf16StoredF32) {
    EXPECT_EQ(conv.weight_bytes() * 2, f32.weight_bytes());
  }
  const int64_t ho = conv.out_height(c.h), wo = conv.out_width(c.w);
  const Tensor xr = conv.mode() == GemmMode::Bf16 ? x.to(DType::BF16) : x;
  const auto ref = reference(xr, w.to(DType::BF16), b, c.stride, c.pad, ho, wo);
  EXPECT_LE(relative_error(conv.forward(x), ref), 1e-5) << gemm_mode_name(conv.mode());
  // Another spatial size (its own primitive, maybe another packing) and the residual sum.
  const Tensor x2 = random_uniform({1, c.h + 3, c.w + 2, c.in}, DType::F32, rng);
  const Tensor xr2 = conv.mode() == GemmMode::Bf16 ? x2.to(DType::BF16) : x2;
  const int64_t ho2 = conv.out_height(c.h + 3), wo2 = conv.out_width(c.w + 2);
  auto ref2 = reference(xr2, w.to(DType::BF16), b, c.stride, c.pad, ho2, wo2);
  const Tensor residual = random_uniform({1, ho2, wo2, c.out}, DType::F32, rng);
  Tensor acc = residual.clone();
  conv.forward(x2, acc, /*accumulate=*/true);
  const auto rs = to_doubles(residual);
  for (size_t i = 0; i < ref2.size(); ++i) ref2[i] += rs[i];
  EXPECT_LE(relative_error(acc, ref2), 1e-5);
}

TEST(Conv2d, Bf16WithoutNativeBf16ComputesInF32) {
  // x = 1 + 2^-9 (not a bf16 value), W = 1 (3x3, one channel), no padding: fp32 gives
  // 9 (1 + 2^-9) exactly, bf16 operands give 9.
  Tensor w = Tensor::empty({1, 1, 3, 3}, DType::F32);
  for (int64_t i = 0; i < 9; ++i) w.data<float>()[i] = 1;
  Tensor x = Tensor::empty({1, 4, 4, 1}, DType::F32);
  for (int64_t i = 0; i < 16; ++i) x.data<float>()[i] = 1 + 0x1p-9f;
  const Conv2d conv(w, Tensor(), 1, Padding2d{}, DType::BF16);
  const Tensor y = conv.forward(x);
  const float want = conv.mode() == GemmMode::Bf16 ? 9.0f : 9 * (1 + 0x1p-9f);
  for (int64_t i = 0; i < y.numel(); ++i) ASSERT_EQ(y.data<float>()[i], want) << i;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Conv2dTest,
    ::testing::Values(
        // 3x3, padding 1 (the VAE's conv_in / resnet convs), odd non-square images.
        ConvCase{1, 13, 9, 5, 7, 3, 1, Padding2d::same(1), true},
        ConvCase{2, 7, 11, 17, 33, 3, 1, Padding2d::same(1), true},
        // 1x1 shortcut without bias and with.
        ConvCase{1, 5, 6, 19, 3, 1, 1, Padding2d{}, false},
        ConvCase{1, 9, 4, 64, 32, 1, 1, Padding2d{}, true},
        // Downsample2D: pad right/bottom by one, 3x3 stride 2, even and odd sizes.
        ConvCase{1, 12, 10, 8, 8, 3, 2, Padding2d{0, 1, 0, 1}, true},
        ConvCase{2, 13, 15, 6, 10, 3, 2, Padding2d{0, 1, 0, 1}, true},
        // A 1-pixel image and a channel count that is not a multiple of 16.
        ConvCase{1, 1, 1, 3, 5, 3, 1, Padding2d::same(1), true}));

TEST(Conv2d, ReusedAcrossShapesAndCopies) {
  auto rng = make_rng();
  const Tensor w = random_uniform({6, 4, 3, 3}, DType::F32, rng);
  const Tensor b = random_uniform({6}, DType::F32, rng);
  const Conv2d conv(w, b, 1, Padding2d::same(1));
  const Conv2d copy = conv;  // shares the packed weights
  for (auto [h, wd] : {std::pair<int64_t, int64_t>{5, 7}, {64, 3}, {2, 2}, {5, 7}}) {
    const Tensor x = random_uniform({1, h, wd, 4}, DType::F32, rng);
    EXPECT_LE(relative_error(copy.forward(x), reference(x, w, b, 1, Padding2d::same(1), h, wd)),
              2e-6);
  }
}

TEST(Conv2d, BadInputsAreRejectedWithClearMessages) {
  auto rng = make_rng();
  const Tensor w = random_uniform({4, 3, 3, 3}, DType::F32, rng);
  EXPECT_THROW(Conv2d(w.reshape({4, 27}), Tensor(), 1, Padding2d{}), Error);
  EXPECT_THROW(Conv2d(w, random_uniform({5}, DType::F32, rng), 1, Padding2d{}), Error);
  EXPECT_THROW(Conv2d(w, Tensor(), 0, Padding2d{}), Error);
  EXPECT_THROW(Conv2d(w, Tensor(), 1, Padding2d{}, DType::I64), Error);
  const Conv2d conv(w, Tensor(), 1, Padding2d::same(1));
  try {
    conv.forward(random_uniform({1, 5, 5, 4}, DType::F32, rng));
    FAIL() << "expected a channel-count error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(N, H, W, 3)"), std::string::npos) << e.what();
  }
  // No padding and an input smaller than the kernel.
  const Conv2d valid(w, Tensor(), 1, Padding2d{});
  EXPECT_THROW(valid.forward(random_uniform({1, 2, 5, 3}, DType::F32, rng)), Error);
  Tensor wrong_out = Tensor::empty({1, 4, 4, 4}, DType::F32);
  EXPECT_THROW(conv.forward(random_uniform({1, 5, 5, 3}, DType::F32, rng), wrong_out), Error);
}

}  // namespace
}  // namespace paradiff::kernels
