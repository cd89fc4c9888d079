// Nearest 2x upsampling and the NCHW <-> NHWC layout changes, against direct index formulas.
#include "paradiff/kernels/upsample.h"

#include <gtest/gtest.h>

#include "paradiff/core/threads.h"
#include "paradiff/kernels/channels_last.h"
#include "paradiff/kernels/upsample_conv2d.h"
#include "testing/test_util.h"

namespace paradiff::kernels {
namespace {

using testing::make_rng;
using testing::random_uniform;
using testing::relative_error;
using testing::to_doubles;

TEST(UpsampleNearest2x, CopiesEachPixelToItsTwoByTwoBlock) {
  auto rng = make_rng();
  for (auto [n, h, w, c] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 5, 3, 7},
                            {2, 1, 1, 1},
                            {1, 6, 9, 33},
                            {3, 4, 2, 16}}) {
    const Tensor x = random_uniform({n, h, w, c}, DType::F32, rng);
    Tensor out = Tensor::empty({n, 2 * h, 2 * w, c}, DType::F32);
    upsample_nearest2x(x, out);
    const float* in = x.data<float>();
    const float* o = out.data<float>();
    for (int64_t b = 0; b < n; ++b)
      for (int64_t y = 0; y < 2 * h; ++y)
        for (int64_t xx = 0; xx < 2 * w; ++xx)
          for (int64_t k = 0; k < c; ++k)
            ASSERT_EQ(o[((b * 2 * h + y) * 2 * w + xx) * c + k],
                      in[((b * h + y / 2) * w + xx / 2) * c + k]);
  }
  const Tensor x = random_uniform({1, 3, 3, 4}, DType::F32, rng);
  Tensor wrong = Tensor::empty({1, 6, 5, 4}, DType::F32);
  EXPECT_THROW(upsample_nearest2x(x, wrong), Error);
}

TEST(ChannelsLast, RoundTripsAndMatchesIndexFormula) {
  auto rng = make_rng();
  for (auto [n, c, h, w] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 3, 13, 9},
                            {2, 40, 33, 35},
                            {1, 1, 1, 1}}) {
    const Tensor x = random_uniform({n, c, h, w}, DType::F32, rng);
    const Tensor nhwc = nchw_to_nhwc(x);
    ASSERT_EQ(nhwc.shape(), (Shape{n, h, w, c}));
    for (int64_t b = 0; b < n; ++b)
      for (int64_t k = 0; k < c; ++k)
        for (int64_t y = 0; y < h; ++y)
          for (int64_t xx = 0; xx < w; ++xx)
            ASSERT_EQ(nhwc.data<float>()[((b * h + y) * w + xx) * c + k],
                      x.data<float>()[((b * c + k) * h + y) * w + xx]);
    const Tensor back = nhwc_to_nchw(nhwc);
    ASSERT_EQ(back.shape(), x.shape());
    for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(back.data<float>()[i], x.data<float>()[i]);
    // bf16 input converts exactly.
    const Tensor xb = x.to(DType::BF16);
    const Tensor nb = nchw_to_nhwc(xb);
    EXPECT_EQ(nb.data<float>()[0], bf16_to_float(xb.data<bf16>()[0]));
  }
  EXPECT_THROW(nchw_to_nhwc(Tensor::empty({3, 4, 5}, DType::F32)), Error);
}

// Nearest 2x upsampling, then a 3x3 convolution with padding 1, in double.
std::vector<double> upsample_conv_reference(const Tensor& x, const Tensor& w, const Tensor& b) {
  const auto xs = to_doubles(x), ws = to_doubles(w), bs = to_doubles(b);
  const int64_t n = x.dim(0), h = x.dim(1), wd = x.dim(2), ci = x.dim(3), co = w.dim(0);
  const int64_t ho = 2 * h, wo = 2 * wd;
  std::vector<double> out(static_cast<size_t>(n * ho * wo * co));
  for (int64_t b0 = 0; b0 < n; ++b0)
    for (int64_t oy = 0; oy < ho; ++oy)
      for (int64_t ox = 0; ox < wo; ++ox)
        for (int64_t o = 0; o < co; ++o) {
          double acc = bs[o];
          for (int64_t ky = 0; ky < 3; ++ky)
            for (int64_t kx = 0; kx < 3; ++kx) {
              const int64_t uy = oy + ky - 1, ux = ox + kx - 1;  // upsampled coordinates
              if (uy < 0 || uy >= ho || ux < 0 || ux >= wo) continue;
              for (int64_t i = 0; i < ci; ++i)
                acc += xs[((b0 * h + uy / 2) * wd + ux / 2) * ci + i] *
                       ws[((o * ci + i) * 3 + ky) * 3 + kx];
            }
          out[((b0 * ho + oy) * wo + ox) * co + o] = acc;
        }
  return out;
}

TEST(UpsampleConv2d, MatchesUpsampleThenConvolve) {
  auto rng = make_rng();
  for (auto [n, h, w, ci, co] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{1, 5, 3, 7, 9},
        {2, 1, 1, 4, 3},
        {1, 6, 9, 33, 17},
        {1, 1, 7, 16, 16},
        {2, 4, 2, 8, 32}}) {
    const Tensor x = random_uniform({n, h, w, ci}, DType::F32, rng);
    const Tensor wt = random_uniform({co, ci, 3, 3}, DType::F32, rng, -0.3f, 0.3f);
    const Tensor b = random_uniform({co}, DType::F32, rng);
    const UpsampleConv2d conv(wt, b);
    const auto ref = upsample_conv_reference(x, wt, b);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      const Tensor y = conv.forward(x);
      ASSERT_EQ(y.shape(), (Shape{n, 2 * h, 2 * w, co}));
      EXPECT_LE(relative_error(y, ref), 2e-6) << n << "x" << h << "x" << w << "x" << ci;
    }
    // The two-step computation with the kernels themselves agrees too.
    Tensor up = Tensor::empty({n, 2 * h, 2 * w, ci}, DType::F32);
    upsample_nearest2x(x, up);
    EXPECT_LE(relative_error(Conv2d(wt, b, 1, Padding2d::same(1)).forward(up), ref), 2e-6);
  }
  set_num_threads(2);
  EXPECT_THROW(UpsampleConv2d(Tensor::empty({4, 4, 2, 2}, DType::F32), Tensor()), Error);
}

}  // namespace
}  // namespace paradiff::kernels
