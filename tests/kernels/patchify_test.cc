// The 2x2 patch packing against its definition (element by element, on fresh random data with
// odd channel counts), its inverse, and the grid positions.
#include "paradiff/kernels/patchify.h"

#include <gtest/gtest.h>

#include "testing/test_util.h"

namespace paradiff::kernels {
namespace {

TEST(Patchify, PacksEachTwoByTwoPatchInOneTokenAndBack) {
  auto rng = testing::make_rng();
  const int64_t b = 2, c = 3, h = 6, w = 10;
  const Tensor x = testing::random_normal({b, c, h, w}, DType::F32, rng);
  Tensor packed = Tensor::empty({b, (h / 2) * (w / 2), 4 * c}, DType::F32);
  patchify_2x2(x, packed);
  const auto in = testing::to_doubles(x);
  std::vector<double> ref(static_cast<size_t>(packed.numel()));
  for (int64_t n = 0; n < b; ++n)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t xx = 0; xx < w; ++xx)
          ref[((n * (h / 2) + y / 2) * (w / 2) + xx / 2) * 4 * c + ch * 4 + (y % 2) * 2 + xx % 2] =
              in[((n * c + ch) * h + y) * w + xx];
  EXPECT_EQ(testing::relative_error(packed, ref), 0.0);
  Tensor back = Tensor::empty(x.shape(), DType::F32);
  unpatchify_2x2(packed, back);
  EXPECT_EQ(testing::relative_error(back, x), 0.0);

  Tensor odd = Tensor::empty({1, 3, 5, 4}, DType::F32);
  Tensor any = Tensor::empty({1, 8, 12}, DType::F32);
  EXPECT_THROW(patchify_2x2(odd, any), Error);
  EXPECT_THROW(unpatchify_2x2(packed, any), Error);
}

TEST(Patchify, GridPositionIds) {
  Tensor ids = Tensor::empty({6, 3}, DType::F32);
  grid_position_ids(2, 3, ids);
  const std::vector<double> want = {0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 1, 0, 0, 1, 1, 0, 1, 2};
  EXPECT_EQ(testing::relative_error(ids, want), 0.0);
  Tensor wrong = Tensor::empty({5, 3}, DType::F32);
  EXPECT_THROW(grid_position_ids(2, 3, wrong), Error);
}

}  // namespace
}  // namespace paradiff::kernels
