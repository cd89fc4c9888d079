#include "paradiff/pipeline/flux/flux_latents.h"

#include <gtest/gtest.h>

#include "paradiff/io/png.h"
#include "testing/temp_dir.h"
#include "testing/test_util.h"

namespace paradiff::pipeline {
namespace {

TEST(FluxLatents, PackingPutsEachTwoByTwoPatchInOneToken) {
  // latents[0, c, y, x] = 1000c + 10y + x on a 4 x 6 latent image with 2 channels.
  Tensor lat = Tensor::empty({1, 2, 4, 6}, DType::F32);
  for (int c = 0; c < 2; ++c)
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 6; ++x) lat.data<float>()[(c * 4 + y) * 6 + x] = 1000 * c + 10 * y + x;
  const Tensor packed = pack_latents(lat);
  EXPECT_EQ(packed.shape(), (Shape{1, 6, 8}));
  // Token (py=1, px=2) -> index 1·3 + 2 = 5; feature c·4 + dy·2 + dx.
  const float* p = packed.data<float>() + 5 * 8;
  EXPECT_EQ(p[0], 10 * 2 + 4);             // c0, dy0, dx0: y=2, x=4
  EXPECT_EQ(p[3], 10 * 3 + 5);             // c0, dy1, dx1
  EXPECT_EQ(p[4 + 2], 1000 + 10 * 3 + 4);  // c1, dy1, dx0
  const Tensor back = unpack_latents(packed, 4, 6);
  EXPECT_EQ(testing::relative_error(back, lat), 0.0);
  EXPECT_THROW(pack_latents(Tensor::zeros({1, 2, 3, 4}, DType::F32)), Error);
  EXPECT_THROW(unpack_latents(packed, 4, 8), Error);
}

TEST(FluxLatents, ImageIdsAndSizes) {
  const Tensor ids = latent_image_ids(2, 3);
  EXPECT_EQ(ids.shape(), (Shape{6, 3}));
  const float* p = ids.data<float>();
  EXPECT_EQ(p[5 * 3 + 0], 0.0f);
  EXPECT_EQ(p[5 * 3 + 1], 1.0f);
  EXPECT_EQ(p[5 * 3 + 2], 2.0f);
  EXPECT_EQ(latent_size(1024, 8), 128);
  EXPECT_EQ(latent_size(1000, 8), 124);
  EXPECT_EQ(checked_image_size(1000, 8, "height"), 992);
  EXPECT_EQ(checked_image_size(256, 8, "height"), 256);
  EXPECT_THROW(checked_image_size(8, 8, "width"), Error);
}

TEST(Png, RoundTripsEightBitValues) {
  auto rng = testing::make_rng();
  Tensor img = testing::random_uniform({3, 5, 7}, DType::F32, rng, -0.2f, 1.2f);
  testing::TempDir dir;
  write_png(dir.file("a.png"), img);
  const Tensor back = read_png(dir.file("a.png"));
  ASSERT_EQ(back.shape(), img.shape());
  for (int64_t i = 0; i < img.numel(); ++i) {
    const float v = std::min(1.0f, std::max(0.0f, img.data<float>()[i]));
    EXPECT_NEAR(back.data<float>()[i], std::nearbyint(v * 255) / 255, 1e-6);
  }
  EXPECT_THROW(write_png(dir.file("missing/a.png"), img), Error);
  EXPECT_THROW(read_png(dir.file("nope.png")), Error);
}

}  // namespace
}  // namespace paradiff::pipeline
