// FluxTransformer2DModel against diffusers' own outputs (tests/fixtures/flux_transformer, made by
// tools/make_fixtures/make_flux_transformer_fixtures.py), in fp32 and bf16 compute, from the
// diffusers layout and the Black Forest Labs single-file layout.
#include "paradiff/models/flux/flux_transformer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "paradiff/core/cpu_isa.h"
#include "paradiff/io/safetensors.h"
#include "paradiff/kernels/gemm_mode.h"
#include "paradiff/kernels/weight_storage.h"
#include "testing/test_util.h"

namespace paradiff::models::flux {
namespace {

std::string fixture(const std::string& name) {
  return testing::source_path("tests/fixtures/flux_transformer/" + name);
}

Tensor expected_sample(const std::string& dir) {
  return SafetensorsFile::open(dir + "/output.safetensors").read("sample", DType::F32);
}

class FluxFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FluxFixtureTest, MatchesDiffusersInF32AndBf16) {
  const std::string dir = fixture(GetParam());
  const FluxTransformerInputs inputs = FluxTransformerInputs::load(dir + "/inputs.safetensors");
  const Tensor expected = expected_sample(dir);
  for (DType compute : {DType::F32, DType::BF16}) {
    const auto model = FluxTransformer2DModel::from_pretrained(dir + "/transformer", compute);
    const Tensor sample = model.forward(inputs);
    ASSERT_EQ(sample.shape(), expected.shape());
    const double err = testing::relative_error(sample, expected);
    std::printf("  %s, %s compute: relative error %.3g\n", GetParam().c_str(),
                std::string(dtype_name(compute)).c_str(), err);
    EXPECT_LE(err, compute == DType::F32 ? 1e-4 : 2e-2)
        << GetParam() << " with " << dtype_name(compute) << " compute";
  }
}

INSTANTIATE_TEST_SUITE_P(Diffusers, FluxFixtureTest,
                         ::testing::Values("tiny_noguidance", "guidance_batch2", "in64_outnull",
                                           "nonzero_ids", "bf16_weights_bfl"));

TEST(FluxTransformer, BlackForestLabsSingleFileMatchesDiffusers) {
  const std::string dir = fixture("bf16_weights_bfl");
  const auto config = FluxTransformerConfig::load(dir + "/transformer/config.json");
  const FluxTransformerInputs inputs = FluxTransformerInputs::load(dir + "/inputs.safetensors");
  const Tensor expected = expected_sample(dir);
  for (DType compute : {DType::F32, DType::BF16}) {
    const auto model = FluxTransformer2DModel::from_single_file(dir + "/bfl/flux-bfl.safetensors",
                                                                config, compute);
    EXPECT_LE(testing::relative_error(model.forward(inputs), expected),
              compute == DType::F32 ? 1e-4 : 2e-2);
  }
}

// What --dtype bf16 computes (kernels::activation_dtype_for). Where bf16 is not native
// (PARADIFF_MAX_ISA=avx512 or avx2, run so by ctest as isa_avx512.* and isa_avx2.*): fp32
// arithmetic on bf16-rounded weights. bf16_weights_bfl's weights are all bf16 already, so its
// bf16 forward must give the fp32 forward's values up to the order of fp32 additions (layers
// called with few rows multiply straight from the bf16 storage, not in oneDNN's order: 4-6e-7
// here), while the weights stay stored in bf16 (half the bytes). Where bf16 is native the
// activations are rounded to bf16 for the GEMMs and attention: 4.9e-3 from fp32 here.
TEST(FluxTransformer, Bf16ComputeIsFp32ArithmeticOnBf16WeightsWhereBf16IsNotNative) {
  const std::string dir = fixture("bf16_weights_bfl");
  const FluxTransformerInputs inputs = FluxTransformerInputs::load(dir + "/inputs.safetensors");
  const auto f32 = FluxTransformer2DModel::from_pretrained(dir + "/transformer", DType::F32);
  const auto bf16 = FluxTransformer2DModel::from_pretrained(dir + "/transformer", DType::BF16);
  const Tensor want = f32.forward(inputs), got = bf16.forward(inputs);
  ASSERT_EQ(got.shape(), want.shape());
  const double err = testing::relative_error(got, want);
  std::printf("  %s: bf16 compute %.3g from fp32 compute; parameters %lld bytes (fp32 %lld)\n",
              cpu_isa_summary().c_str(), err, static_cast<long long>(bf16.parameter_bytes()),
              static_cast<long long>(f32.parameter_bytes()));
  EXPECT_LT(bf16.parameter_bytes() * 10, f32.parameter_bytes() * 6);  // norms stay fp32
  if (native_bf16()) {
    EXPECT_GT(err, 1e-3);
  } else {
    EXPECT_LE(err, 2e-6);
  }
}

// diffusers' enable_layerwise_casting(storage_dtype=bfloat16, compute_dtype=float32): its output
// (tools/make_fixtures/make_layerwise_casting_fixtures.py) is 2.7e-3 away from the fp32 one, and
// paradiff's --storage-dtype bf16 must give it to fp32 tolerance: the same layers narrowed
// (weights and biases), the same ones skipped (norm*.linear, the final proj_out).
// The same with storage_dtype=float8_e4m3fn (4.4e-2 from fp32): --storage-dtype fp8.
TEST(FluxTransformer, WeightStorageMatchesDiffusersLayerwiseCasting) {
  const std::string dir = fixture("guidance_batch2");
  const FluxTransformerInputs inputs = FluxTransformerInputs::load(dir + "/inputs.safetensors");
  for (const auto& [storage, name] : {std::pair{kernels::WeightStorage::Bf16, "bf16"},
                                      std::pair{kernels::WeightStorage::Fp8E4M3, "fp8"}}) {
    const Tensor expected = SafetensorsFile::open(dir + "/output_" + name + "_storage.safetensors")
                                .read("sample", DType::F32);
    kernels::WeightStorageScope narrow(storage);
    const auto model = FluxTransformer2DModel::from_pretrained(dir + "/transformer", DType::F32);
    const Tensor sample = model.forward(inputs);
    const double err = testing::relative_error(sample, expected);
    const double from_fp32 = testing::relative_error(sample, expected_sample(dir));
    std::printf("  %s storage: relative error %.3g against diffusers' casting, %.3g against fp32\n",
                name, err, from_fp32);
    EXPECT_LE(err, 1e-4) << name;
    EXPECT_GT(from_fp32, 1e-3) << name;
  }
}

// diffusers' enable_layerwise_casting(storage_dtype=float8_e4m3fn, compute_dtype=bfloat16) on the
// model loaded in bf16 (output_fp8_storage_bf16_compute.safetensors, with its own timestep and
// guidance, see make_layerwise_casting_fixtures.py): casting moves diffusers' output 4.9e-2, its
// bf16 compute alone 7.6e-3. paradiff's --dtype bf16 --storage-dtype fp8 must land within 2e-2 of
// it, where its plain bf16 output and the fp32 output (both ~4.9e-2 away) must not.
TEST(FluxTransformer, Fp8StorageWithBf16ComputeMatchesDiffusersLayerwiseCasting) {
  const std::string dir = fixture("guidance_batch2");
  FluxTransformerInputs inputs = FluxTransformerInputs::load(dir + "/inputs.safetensors");
  const SafetensorsFile want =
      SafetensorsFile::open(dir + "/output_fp8_storage_bf16_compute.safetensors");
  inputs.timestep = want.read("timestep", DType::F32);
  inputs.guidance = want.read("guidance", DType::F32);
  const Tensor expected = want.read("sample", DType::F32);
  const Tensor fp32 = want.read("sample_fp32", DType::F32);
  const auto plain = FluxTransformer2DModel::from_pretrained(dir + "/transformer", DType::BF16);
  Tensor sample;
  {
    kernels::WeightStorageScope narrow(kernels::WeightStorage::Fp8E4M3);
    const auto model = FluxTransformer2DModel::from_pretrained(dir + "/transformer", DType::BF16);
    sample = model.forward(inputs);
  }
  const Tensor unnarrowed = plain.forward(inputs);
  const double err = testing::relative_error(sample, expected);
  const double plain_err = testing::relative_error(unnarrowed, expected);
  const double fp32_err = testing::relative_error(fp32, expected);
  std::printf(
      "  fp8 storage, bf16 compute: relative error %.3g against diffusers' casting; "
      "plain bf16 %.3g, fp32 %.3g\n",
      err, plain_err, fp32_err);
  constexpr double kTolerance = 2e-2;
  EXPECT_LE(err, kTolerance);
  EXPECT_GT(plain_err, kTolerance);
  EXPECT_GT(fp32_err, kTolerance);
  // paradiff's own bf16 noise: its fp32 model on the same inputs is within bf16 tolerance of
  // diffusers' fp32 output, so the 2e-2 above is not spent on the inputs.
  const auto f32_model = FluxTransformer2DModel::from_pretrained(dir + "/transformer", DType::F32);
  EXPECT_LE(testing::relative_error(f32_model.forward(inputs), fp32), 1e-4);
}

// A transformer saved by torch with float8_e4m3fn weights (diffusers' layerwise casting, its state
// dict as it is: F8_E4M3 for the narrowed layers' weights and biases, F32 for the skipped ones;
// fixtures/flux_transformer/fp8_checkpoint). It loads, widened exactly, and matches diffusers'
// output of that folder to fp32 tolerance. With --storage-dtype fp8 its values are already e4m3:
// no rounding is added, the same bits in fp32 compute and in bf16 compute (where bf16 is native;
// elsewhere within 1e-6, see below).
TEST(FluxTransformer, LoadsAnFp8CheckpointExactly) {
  const std::string dir = fixture("fp8_checkpoint");
  const FluxTransformerInputs inputs =
      FluxTransformerInputs::load(fixture("nonzero_ids") + "/inputs.safetensors");
  const Tensor expected = expected_sample(dir);
  for (DType compute : {DType::F32, DType::BF16}) {
    const auto model = FluxTransformer2DModel::from_pretrained(dir + "/transformer", compute);
    const Tensor sample = model.forward(inputs);
    const double err = testing::relative_error(sample, expected);
    std::printf("  fp8 checkpoint, %s compute: relative error %.3g against diffusers\n",
                std::string(dtype_name(compute)).c_str(), err);
    EXPECT_LE(err, compute == DType::F32 ? 1e-4 : 2e-2);
    kernels::WeightStorageScope narrow(kernels::WeightStorage::Fp8E4M3);
    const auto stored = FluxTransformer2DModel::from_pretrained(dir + "/transformer", compute);
    const Tensor again = stored.forward(inputs);
    ASSERT_EQ(again.nbytes(), sample.nbytes());
    if (compute == DType::BF16 && kernels::activation_dtype_for(DType::BF16) == DType::F32) {
      // Without native bf16, a few-row layer multiplies straight from bf16 storage but widens
      // fp8 storage for oneDNN: the same products, summed in another order.
      EXPECT_LE(testing::relative_error(again, sample), 1e-6);
    } else {
      EXPECT_EQ(std::memcmp(again.raw_data(), sample.raw_data(), sample.nbytes()), 0)
          << dtype_name(compute);
    }
  }
  // The fp32 checkpoint it came from gives another output: the fp8 values are what was read.
  EXPECT_GT(testing::relative_error(expected_sample(fixture("nonzero_ids")), expected), 1e-3);
}

}  // namespace
}  // namespace paradiff::models::flux
