// diffusers' `variant=`: tests/fixtures/flux_pipeline/tiny_fp16 is the tiny FLUX folder saved by
// diffusers as the "fp16" variant (tools/make_fixtures/make_variant_fixtures.py): sharded variant
// indexes (diffusers' and transformers') and a single variant file. The variant run must match
// diffusers on those weights, stay within fp16 rounding of the fp32 run, and provably read the
// variant files (the non-variant ones beside them are made unreadable).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "paradiff/io/checkpoint.h"
#include "paradiff/io/safetensors.h"
#include "paradiff/pipeline/pipeline_registry.h"
#include "testing/temp_dir.h"
#include "testing/test_util.h"

namespace paradiff::pipeline {
namespace {

namespace fs = std::filesystem;

const std::string kTiny = "tests/fixtures/flux_pipeline/tiny";
const std::string kTinyFp16 = "tests/fixtures/flux_pipeline/tiny_fp16";

GenerationOptions case0(std::string* prompt) {
  std::ifstream in(testing::source_path("tests/fixtures/flux_pipeline/cases.json"));
  const auto c = nlohmann::json::parse(in).at(0);
  GenerationOptions o;
  o.height = c["height"];
  o.width = c["width"];
  o.num_inference_steps = c["num_inference_steps"];
  o.guidance_scale = c["guidance_scale"];
  o.max_sequence_length = c["max_sequence_length"];
  o.seed = c["seed"];
  *prompt = c["prompt"];
  return o;
}

std::unique_ptr<DiffusionPipeline> open(const std::string& folder, const std::string& variant) {
  PipelineRuntime runtime;
  runtime.variant = variant;
  return load_pipeline(folder, runtime);
}

// Case 0's final latents (and, when asked, decodes them, so the VAE is read too); `quick`: one
// step at 32x32, for the tests that compare runs with one another.
Tensor final_latents(DiffusionPipeline& pipe, bool decode = false, bool quick = false) {
  std::string prompt;
  GenerationOptions o = case0(&prompt);
  if (quick) {
    o.num_inference_steps = 1;
    o.height = o.width = 32;
  }
  o = pipe.resolve(o);
  Tensor latents = pipe.denoise(pipe.encode_prompt({prompt}, {}, o), pipe.prepare_latents(o), o);
  if (decode) pipe.decode(latents, o);
  return latents;
}

// The fp32 folder with the fp16 variant's files added beside its own, as on the Hub.
void make_mixed_folder(const std::string& dir) {
  fs::copy(testing::source_path(kTiny), dir, fs::copy_options::recursive);
  for (const auto& entry : fs::recursive_directory_iterator(testing::source_path(kTinyFp16))) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && name.find(".fp16") != std::string::npos)
      fs::copy_file(entry.path(), fs::path(dir) / entry.path().parent_path().filename() /
                                      entry.path().filename());
  }
}

// Every non-variant weight file is replaced by garbage: reading one fails.
void spoil_non_variant_weights(const std::string& dir) {
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(".safetensors") && name.find(".fp16") == std::string::npos)
      std::ofstream(entry.path(), std::ios::trunc) << "not a safetensors file";
  }
}

TEST(PipelineVariant, Fp16MatchesDiffusersAndTheFp32RunWithinFp16Rounding) {
  auto pipe = open(testing::source_path(kTinyFp16), "fp16");
  const Tensor latents = final_latents(*pipe);
  const auto diffusers_fp16 = SafetensorsFile::open(
      testing::source_path("tests/fixtures/flux_pipeline/expected_fp16.safetensors"));
  const auto fp32 = SafetensorsFile::open(
      testing::source_path("tests/fixtures/flux_pipeline/expected.safetensors"));
  const double vs_diffusers =
      testing::relative_error(latents, diffusers_fp16.read("case0.final_latents", DType::F32));
  const double vs_fp32 =
      testing::relative_error(latents, fp32.read("case0.final_latents", DType::F32));
  std::printf("  fp16 variant: vs diffusers (same weights) %.3g, vs the fp32 folder %.3g\n",
              vs_diffusers, vs_fp32);
  EXPECT_LE(vs_diffusers, 1e-4);
  EXPECT_LE(vs_fp32, 1e-2);  // fp16 weights: diffusers itself differs by 5.9e-4
  EXPECT_GT(vs_fp32, 0.0);   // other weights were read
}

TEST(PipelineVariant, ReadsTheVariantFilesAndOnlyThem) {
  testing::TempDir tmp;
  const std::string mixed = tmp.file("mixed");
  make_mixed_folder(mixed);
  // The names diffusers and transformers give a variant, single and sharded.
  EXPECT_TRUE(Checkpoint::open_folder(mixed + "/transformer", "diffusion_pytorch_model", "fp16")
                  .path()
                  .ends_with("transformer/diffusion_pytorch_model.safetensors.index.fp16.json"));
  EXPECT_TRUE(Checkpoint::open_folder(mixed + "/text_encoder_2", "model", "fp16")
                  .path()
                  .ends_with("text_encoder_2/model.fp16.safetensors"));
  EXPECT_TRUE(Checkpoint::open_folder(mixed + "/text_encoder", "model", "fp16")
                  .path()
                  .ends_with("text_encoder/model.safetensors.index.fp16.json"));

  const Tensor fp32_run = final_latents(*open(mixed, ""), false, true);
  spoil_non_variant_weights(mixed);
  try {
    final_latents(*open(mixed, ""), false, true);
    ADD_FAILURE() << "the spoiled non-variant files were not read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
  const Tensor variant_run = final_latents(*open(mixed, "fp16"), /*decode=*/true, true);
  const Tensor reference =
      final_latents(*open(testing::source_path(kTinyFp16), "fp16"), false, true);
  EXPECT_EQ(testing::relative_error(variant_run, reference), 0.0);
  EXPECT_GT(testing::relative_error(variant_run, fp32_run), 0.0);
}

TEST(PipelineVariant, AComponentWithoutTheVariantLoadsItsOtherFilesAsDiffusersDoes) {
  testing::TempDir tmp;
  const std::string mixed = tmp.file("mixed");
  make_mixed_folder(mixed);
  for (const auto& entry : fs::directory_iterator(mixed + "/transformer"))
    if (entry.path().filename().string().find(".fp16") != std::string::npos)
      fs::remove(entry.path());
  auto pipe = open(mixed, "fp16");
  EXPECT_EQ(pipe->variant_of("transformer"), "");
  EXPECT_EQ(pipe->variant_of("vae"), "fp16");
  EXPECT_EQ(pipe->variant_of("text_encoder"), "fp16");
  const Tensor latents = final_latents(*pipe, false, true);
  EXPECT_EQ(latents.dim(0), 1);
}

TEST(PipelineVariant, RefusesAVariantNoComponentHasAndBadNames) {
  try {
    open(testing::source_path(kTiny), "bf16");
    FAIL() << "a variant without files was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no component has files of variant 'bf16'"),
              std::string::npos)
        << e.what();
  }
  try {
    open(testing::source_path(kTinyFp16), "../fp16");
    FAIL() << "a variant with a slash was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is not a file-name part"), std::string::npos) << e.what();
  }
  // Without the variant the variant-only folder has no weights, as diffusers says; refused when
  // the pipeline opens.
  try {
    open(testing::source_path(kTinyFp16), "");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no safetensors checkpoint found"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace paradiff::pipeline
