#include "paradiff/kernels/weight_storage.h"

#include <gtest/gtest.h>

#include <cstring>

#include "paradiff/core/cpu_isa.h"

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
  EXPECT_EQ(weight_storage(), WeightStorage::AsComputed);
  Linear narrowed;
  {
    WeightStorageScope scope(WeightStorage::Bf16);
    EXPECT_EQ(weight_storage(), WeightStorage::Bf16);
    narrowed = Linear(w, b, DType::F32);
    {
      WeightStorageScope inner(WeightStorage::AsComputed);  // scopes nest
      EXPECT_EQ(Linear(w, b, DType::F32).mode(), GemmMode::F32);
    }
    EXPECT_EQ(weight_storage(), WeightStorage::Bf16);
  }
  EXPECT_EQ(weight_storage(), WeightStorage::AsComputed);  // restored when the scope ends
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

TEST(WeightStorage, Fp8StorageIsF32ArithmeticOnE4M3RoundedWeights) {
  auto rng = make_rng();
  const int64_t in = 96, out = 80;
  const Tensor w = random_uniform({out, in}, DType::F32, rng, -2.0f, 2.0f);
  const Tensor b = random_uniform({out}, DType::F32, rng);
  const Linear plain(w, b, DType::F32);
  Linear narrowed;
  {
    WeightStorageScope scope(WeightStorage::Fp8E4M3);
    narrowed = Linear(w, b, DType::F32);
  }
  EXPECT_EQ(narrowed.mode(), GemmMode::Fp8StoredF32);
  EXPECT_EQ(narrowed.weight_bytes() * 4, plain.weight_bytes());  // a quarter of fp32's packing
  // The same bits as an fp32 layer on the e4m3-rounded weights, whatever the row count (the fp8
  // layer always widens and runs oneDNN's fp32 GEMM); and not the fp32 layer's.
  const Linear rounded(round_to_storage(w, WeightStorage::Fp8E4M3), b, DType::F32);
  for (int64_t rows : {1, 2, 7, 64}) {
    const Tensor x = random_uniform({rows, in}, DType::F32, rng);
    const Tensor want = rounded.forward(x), got = narrowed.forward(x);
    for (int64_t i = 0; i < want.numel(); ++i)
      ASSERT_EQ(got.data<float>()[i], want.data<float>()[i]) << "rows " << rows << " at " << i;
    EXPECT_GT(testing::relative_error(got, plain.forward(x)), 1e-3) << "rows " << rows;
  }
}

// diffusers' enable_layerwise_casting(storage_dtype=float8_e4m3fn, compute_dtype=bfloat16): e4m3
// codes in the bf16 packing, widened exactly to bf16 per call, oneDNN's bf16 GEMM. The same bits
// as a bf16 layer on the e4m3-rounded weights (every e4m3 value is a bf16 value), at half of its
// weight bytes. Without native bf16 the layer is Fp8StoredF32, as bf16 compute is Bf16StoredF32
// there: the same bits as that bf16 layer at 64 rows (both widen and run oneDNN's fp32 GEMM).
TEST(WeightStorage, Fp8StorageWithBf16ComputeIsBf16ArithmeticOnE4M3RoundedWeights) {
  auto rng = make_rng();
  const int64_t in = 96, out = 80;
  const Tensor w = random_uniform({out, in}, DType::F32, rng, -2.0f, 2.0f);
  const Tensor b = random_uniform({out}, DType::F32, rng);
  const Linear plain(w, b, DType::BF16);
  Linear narrowed;
  {
    WeightStorageScope scope(WeightStorage::Fp8E4M3);
    narrowed = Linear(w, b, DType::BF16);
  }
  const bool native = native_bf16();
  EXPECT_EQ(narrowed.mode(), native ? GemmMode::Fp8StoredBf16 : GemmMode::Fp8StoredF32);
  EXPECT_EQ(narrowed.compute_dtype(), DType::BF16);
  EXPECT_EQ(gemm_mode_name(GemmMode::Fp8StoredBf16), "fp8 e4m3 stored, bf16 computed");
  // Half of the bf16 layer's packing natively; without native bf16 both are fp32 packings.
  EXPECT_EQ(narrowed.weight_bytes() * 2, plain.weight_bytes());
  const Linear rounded(round_to_storage(w, WeightStorage::Fp8E4M3), b, DType::BF16);
  for (DType x_dtype : {DType::F32, DType::BF16}) {
    for (int64_t rows : {1, 2, 7, 64}) {
      const Tensor x = random_uniform({rows, in}, DType::F32, rng).to(x_dtype);
      for (DType out_dtype : {DType::F32, DType::BF16}) {
        const Tensor want = rounded.forward(x, out_dtype), got = narrowed.forward(x, out_dtype);
        if (native || rows == 64) {
          ASSERT_EQ(std::memcmp(got.raw_data(), want.raw_data(), got.nbytes()), 0)
              << "rows " << rows << " out " << dtype_name(out_dtype);
        }
        EXPECT_LT(testing::relative_error(got, want), out_dtype == DType::BF16 ? 1e-2 : 1e-5);
        // ... and not the bf16 layer's on the unrounded weights: e4m3 is ~3e-2 relative.
        EXPECT_GT(testing::relative_error(got, plain.forward(x, out_dtype)), 1e-2)
            << "rows " << rows;
      }
    }
  }
}

TEST(WeightStorage, ConvolutionsNarrowToo) {
  auto rng = make_rng();
  const Tensor w = random_uniform({8, 4, 3, 3}, DType::F32, rng);
  const Conv2d plain(w, Tensor(), 1, Padding2d::same(1), DType::F32);
  WeightStorageScope scope(WeightStorage::Bf16);
  const Conv2d narrowed(w, Tensor(), 1, Padding2d::same(1), DType::F32);
  EXPECT_EQ(plain.mode(), GemmMode::F32);
  EXPECT_EQ(narrowed.mode(), GemmMode::Bf16StoredF32);
  WeightStorageScope fp8(WeightStorage::Fp8E4M3);  // not for convolutions: refused by name
  EXPECT_THROW(Conv2d(w, Tensor(), 1, Padding2d::same(1), DType::F32), Error);
  EXPECT_THROW(Conv2d(w, Tensor(), 1, Padding2d::same(1), DType::BF16), Error);
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
  EXPECT_EQ(parse_weight_storage("bf16"), WeightStorage::Bf16);
  EXPECT_EQ(parse_weight_storage("fp32"), WeightStorage::AsComputed);
  EXPECT_EQ(parse_weight_storage("f32"), WeightStorage::AsComputed);
  for (const char* fp8 : {"fp8", "fp8_e4m3", "float8_e4m3fn"})
    EXPECT_EQ(parse_weight_storage(fp8), WeightStorage::Fp8E4M3) << fp8;
  check_weight_storage(WeightStorage::Fp8E4M3, DType::BF16);  // Fp8StoredBf16
  EXPECT_TRUE(storage_narrows(WeightStorage::Fp8E4M3, DType::BF16));
  EXPECT_TRUE(storage_narrows(WeightStorage::Bf16, DType::F32));
  EXPECT_FALSE(storage_narrows(WeightStorage::Bf16, DType::BF16));
  EXPECT_FALSE(storage_narrows(WeightStorage::AsComputed, DType::F32));
  EXPECT_THROW(check_weight_storage(WeightStorage::Fp8E4M3, DType::F16), Error);
  check_weight_storage(WeightStorage::Fp8E4M3, DType::F32);
  check_weight_storage(WeightStorage::Bf16, DType::BF16);
  try {
    parse_weight_storage("bfloat");
    FAIL() << "bfloat accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown storage dtype 'bfloat'"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace paradiff::kernels
