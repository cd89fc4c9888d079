#include "paradiff/io/png.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "paradiff/core/error.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

// A (3, h, w) image of fresh random values in [0, 1].
Tensor random_image(int64_t h, int64_t w, uint64_t seed) {
  Tensor t = Tensor::empty({3, h, w}, DType::F32);
  uint64_t x = seed * 2654435761u + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    t.data<float>()[i] = static_cast<float>(x >> 40) / static_cast<float>(1 << 24);
  }
  return t;
}

TEST(Png, RoundTripsToTheQuantisedPixels) {
  const Tensor image = random_image(5, 7, 3);
  const Tensor back = decode_png(encode_png(image), "memory");
  ASSERT_EQ(back.shape(), image.shape());
  for (int64_t i = 0; i < image.numel(); ++i)
    EXPECT_EQ(back.data<float>()[i], std::nearbyint(image.data<float>()[i] * 255.0f) / 255.0f);
}

TEST(Png, RefusesWhatIsNotAPng) {
  EXPECT_THROW(
      {
        try {
          decode_png("GIF89a....", "x.png");
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("x.png: not a PNG file"), std::string::npos);
          throw;
        }
      },
      Error);
}

TEST(Png, RefusesATruncatedFile) {
  const std::string bytes = encode_png(random_image(8, 8, 5));
  for (size_t keep : {size_t{12}, size_t{40}, bytes.size() / 2, bytes.size() - 5}) {
    try {
      decode_png(bytes.substr(0, keep), "cut.png");
      ADD_FAILURE() << "a PNG cut to " << keep << " bytes was read";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cut.png: cannot read PNG"), std::string::npos)
          << e.what();
    }
  }
}

TEST(Png, RefusesAHeaderClaimingAHugeImage) {
  std::string bytes = encode_png(random_image(2, 2, 7));
  // IHDR's width (bytes 16-19, big-endian) set to 100000: refused before rows are allocated (the
  // chunk's CRC no longer matches either; whichever libpng meets first, it is an error).
  bytes[16] = 0, bytes[17] = 1, bytes[18] = static_cast<char>(0x86),
  bytes[19] = static_cast<char>(0xa0);
  EXPECT_THROW(decode_png(bytes, "huge.png"), Error);
}

TEST(Png, ReadPngNamesAMissingFile) {
  try {
    read_png("/no/such/file.png");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/no/such/file.png: cannot open"), std::string::npos);
  }
}

}  // namespace
}  // namespace paradiff
