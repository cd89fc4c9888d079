#include "paradiff/core/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "paradiff/core/memory.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

TEST(Shape, NumelAndIndexing) {
  Shape s{2, 3, 5};
  EXPECT_EQ(s.ndim(), 3);
  EXPECT_EQ(s.numel(), 30);
  EXPECT_EQ(s[-1], 5);
  EXPECT_EQ(s.to_string(), "[2, 3, 5]");
  EXPECT_THROW(s[3], Error);
}

TEST(Shape, RejectsTooManyDimsNegativeAndOverflow) {
  EXPECT_THROW((Shape{1, 1, 1, 1, 1, 1, 1}), Error);
  EXPECT_THROW((Shape{2, -1}), Error);
  try {
    Shape s{int64_t{1} << 40, int64_t{1} << 40};
    FAIL() << "overflow not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("64 bits"), std::string::npos) << e.what();
  }
}

TEST(Tensor, AllocationIsAlignedAndAccounted) {
  const int64_t before = current_bytes();
  {
    Tensor t = Tensor::empty({3, 7}, DType::F32);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % kTensorAlignment, 0u);
    EXPECT_GE(current_bytes(), before + 84);
    EXPECT_GE(peak_bytes(), current_bytes());
  }
  EXPECT_EQ(current_bytes(), before);
}

TEST(Tensor, PeakTracksTheHighestUsage) {
  reset_peak_bytes();
  const int64_t base = current_bytes();
  { Tensor big = Tensor::empty({1 << 20}, DType::F32); }
  Tensor small = Tensor::empty({16}, DType::F32);
  EXPECT_GE(peak_bytes(), base + (4 << 20));
  EXPECT_LT(current_bytes(), base + (4 << 20));
}

TEST(Tensor, SliceSelectReshapeAreViews) {
  Tensor t = Tensor::empty({4, 3, 2}, DType::F32);
  float* p = t.data<float>();
  for (int i = 0; i < 24; ++i) p[i] = static_cast<float>(i);
  Tensor s = t.slice(1, 2);
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(s.data<float>()[0], 6.0f);
  Tensor row = t.select(3);
  EXPECT_EQ(row.shape(), (Shape{3, 2}));
  EXPECT_EQ(row.data<float>()[5], 23.0f);
  Tensor r = t.reshape({-1, 6});
  EXPECT_EQ(r.shape(), (Shape{4, 6}));
  r.data<float>()[0] = 100.0f;
  EXPECT_EQ(p[0], 100.0f);
  EXPECT_THROW(t.slice(3, 2), Error);
  EXPECT_THROW(t.select(4), Error);
  EXPECT_THROW(t.reshape({5, 5}), Error);
  EXPECT_THROW(t.data<bf16>(), Error);
}

TEST(DType, Bf16RoundsToNearestEvenLikeTorch) {
  // 1 + 2^-8 lies exactly between two bf16 values: ties go to even (1.0).
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  // 1 + 3*2^-8 ties between 1+2^-7 and 1+2^-6: goes to the even mantissa 1+2^-6.
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8))),
            1.0f + std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isinf(bf16_to_float(float_to_bf16(std::numeric_limits<float>::infinity()))));
}

TEST(DType, F16RoundTripsEveryHalfValue) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const f16 h{static_cast<uint16_t>(bits)};
    const float f = f16_to_float(h);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(f))));
      continue;
    }
    ASSERT_EQ(float_to_f16(f).bits, h.bits) << "half bits " << bits << " value " << f;
  }
  EXPECT_EQ(f16_to_float(float_to_f16(65520.0f)), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16_to_float(float_to_f16(1e-8f)), 0.0f);
}

TEST(Tensor, ConvertMatchesScalarConversion) {
  auto rng = testing::make_rng();
  // Odd length so the vector path and the scalar tail both run.
  Tensor a = testing::random_normal({1037}, DType::F32, rng, 100.0f);
  for (DType d : {DType::BF16, DType::F16}) {
    Tensor b = a.to(d);
    Tensor back = b.to(DType::F32);
    const float* src = a.data<float>();
    for (int64_t i = 0; i < a.numel(); ++i) {
      const float want = d == DType::BF16 ? bf16_to_float(float_to_bf16(src[i]))
                                          : f16_to_float(float_to_f16(src[i]));
      ASSERT_EQ(back.data<float>()[i], want) << dtype_name(d) << " element " << i;
    }
  }
  EXPECT_THROW(a.to(DType::I64), Error);
}

TEST(DType, ParseNames) {
  EXPECT_EQ(parse_dtype("bf16"), DType::BF16);
  EXPECT_EQ(parse_dtype("fp32"), DType::F32);
  try {
    parse_dtype("f8");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'f8'"), std::string::npos);
  }
}

}  // namespace
}  // namespace paradiff

namespace paradiff {
namespace {

TEST(Tensor, NarrowAndConcatRoundTripOnEveryDim) {
  auto rng = testing::make_rng();
  Tensor t = testing::random_uniform({3, 5, 4}, DType::F32, rng);
  for (int dim = 0; dim < 3; ++dim) {
    const int64_t n = t.dim(dim);
    std::vector<Tensor> parts{t.narrow(dim, 0, 1), t.narrow(dim, 1, n - 1)};
    Tensor back = concat(parts, dim);
    ASSERT_EQ(back.shape(), t.shape());
    EXPECT_EQ(testing::relative_error(back, t), 0.0) << "dim " << dim;
  }
  // Element check: t[i, j, k] for a middle slice of dim 1.
  Tensor mid = t.narrow(1, 2, 2);
  EXPECT_EQ(mid.data<float>()[1 * 8 + 1 * 4 + 3], t.data<float>()[1 * 20 + 3 * 4 + 3]);
  // A leading size-1 dim keeps narrow a view.
  Tensor one = t.slice(0, 1);
  EXPECT_EQ(one.narrow(1, 3, 2).raw_data(), static_cast<const void*>(t.data<float>() + 12));
  EXPECT_THROW(t.narrow(1, 4, 2), Error);
  EXPECT_THROW(concat({t, Tensor::zeros({3, 5, 2}, DType::F32)}, 1), Error);
  EXPECT_EQ(concat({t, Tensor::zeros({3, 5, 2}, DType::F32)}, 2).shape(), (Shape{3, 5, 6}));
}

}  // namespace
}  // namespace paradiff

namespace paradiff {
namespace {

TEST(Tensor, IntegerTensorsConvertToF32AndNothingElseConvertsToIntegers) {
  Tensor ids = Tensor::empty({4}, DType::I64);
  const int64_t values[4] = {0, 1, -7, (int64_t{1} << 40) + 1};
  for (int i = 0; i < 4; ++i) ids.data<int64_t>()[i] = values[i];
  const Tensor f = ids.to(DType::F32);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(f.data<float>()[i], static_cast<float>(values[i]));
  EXPECT_THROW(f.to(DType::I64), Error);
  EXPECT_THROW(ids.to(DType::BF16), Error);
}

}  // namespace
}  // namespace paradiff
