#include "paradiff/kernels/weight_storage.h"

#include <gtest/gtest.h>

#include "paradiff/core/error.h"
#include "paradiff/kernels/conv2d.h"
#include "paradiff/kernels/linear.h"
#include "testing/test_util.h"

namespace paradiff::kernels {
namespace {

using testing::make_rng;
using testing::random_uniform;

TEST(WeightStorage, Bf16StorageForF32ComputeIsF32ArithmeticOnBf16RoundedWeights) {
  auto rng = make_rng();
  const int64_t in = 96, out = 80;
  const Tensor w = random_uniform({out, in}, DType::F32, rng);
  const Tensor b = random_uniform({out}, DType::F32, rng);
  const Linear plain(w, b, DType::F32);
  EXPECT_EQ(weight_storage_dtype(), DType::F32);
  Linear narrowed;
  {
    WeightStorageScope scope(DType::BF16);
    EXPECT_EQ(weight_storage_dtype(), DType::BF16);
    narrowed = Linear(w, b, DType::F32);
    {
      WeightStorageScope inner(DType::F32);  // scopes nest
      EXPECT_EQ(Linear(w, b, DType::F32).mode(), GemmMode::F32);
    }
    EXPECT_EQ(weight_storage_dtype(), DType::BF16);
  }
  EXPECT_EQ(weight_storage_dtype(), DType::F32);  // restored when the scope ends
  EXPECT_EQ(narrowed.mode(), GemmMode::Bf16StoredF32);
  EXPECT_EQ(narrowed.compute_dtype(), DType::F32);
  EXPECT_EQ(narrowed.weight_bytes() * 2, plain.weight_bytes());  // half of fp32's packing

  // What an fp32 layer built on the bf16-rounded weights computes, for fp32 inputs that are not
  // bf16 values (the activations stay fp32): only the weights are narrowed. Bit for bit where
  // both run oneDNN's fp32 GEMM; up to a few rows the narrowed layer reads its bf16 storage
  // directly (Bf16StoredWeights::direct_rows), another summation order.
  const Linear rounded(w.to(DType::BF16).to(DType::F32), b, DType::F32);
  for (int64_t rows : {1, 2, 7, 64}) {
    const Tensor x = random_uniform({rows, in}, DType::F32, rng);
    const Tensor want = rounded.forward(x), got = narrowed.forward(x);
    if (rows == 64) {
      for (int64_t i = 0; i < want.numel(); ++i)
        ASSERT_EQ(got.data<float>()[i], want.data<float>()[i]) << "rows " << rows << " at " << i;
    }
    EXPECT_LT(testing::relative_error(got, want), 1e-6) << "rows " << rows;
    // ... and not the fp32 layer's: the narrowing is real (bf16 rounding is ~1e-3 relative).
    EXPECT_GT(testing::relative_error(got, plain.forward(x)), 1e-4) << "rows " << rows;
  }
}

TEST(WeightStorage, ConvolutionsNarrowToo) {
  auto rng = make_rng();
  const Tensor w = random_uniform({8, 4, 3, 3}, DType::F32, rng);
  const Conv2d plain(w, Tensor(), 1, Padding2d::same(1), DType::F32);
  WeightStorageScope scope(DType::BF16);
  const Conv2d narrowed(w, Tensor(), 1, Padding2d::same(1), DType::F32);
  EXPECT_EQ(plain.mode(), GemmMode::F32);
  EXPECT_EQ(narrowed.mode(), GemmMode::Bf16StoredF32);
}

TEST(WeightStorage, DiffusersSkipPatterns) {
  for (const char* skipped :
       {"transformer_blocks.0.norm1.linear", "norm_out.linear",
        "single_transformer_blocks.3.norm.linear", "proj_out", "proj_in", "pos_embed.proj",
        "patch_embed.proj", "transformer_blocks.1.attn.norm_q"})
    EXPECT_TRUE(layerwise_casting_skips(skipped)) << skipped;
  for (const char* narrowed :
       {"single_transformer_blocks.0.proj_out", "transformer_blocks.0.attn.to_q", "x_embedder",
        "context_embedder", "time_text_embed.timestep_embedder.linear_1", "proj_outer",
        "transformer_blocks.0.img_mod.1"})
    EXPECT_FALSE(layerwise_casting_skips(narrowed)) << narrowed;
}

TEST(WeightStorage, NamesAreParsedAndTheRestRefused) {
  EXPECT_EQ(parse_weight_storage("bf16"), DType::BF16);
  EXPECT_EQ(parse_weight_storage("fp32"), DType::F32);
  EXPECT_EQ(parse_weight_storage("f32"), DType::F32);
  try {
    parse_weight_storage("fp8");
    FAIL() << "fp8 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'fp8' is not supported yet"), std::string::npos)
        << e.what();
  }
  try {
    parse_weight_storage("bfloat");
    FAIL() << "bfloat accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown storage dtype 'bfloat'"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(WeightStorageScope(DType::F16), Error);
}

}  // namespace
}  // namespace paradiff::kernels
