// Pipelines as plug-ins: dispatch on model_index.json's _class_name, refusal of classes paradiff
// does not run (pipeline or component) with the list of those it does, and the component cache
// (each component loaded once and reused; freed after its stage under ReleaseAfterStage).
#include "paradiff/pipeline/pipeline_registry.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "paradiff/pipeline/flux/flux_pipeline.h"
#include "paradiff/pipeline/qwen_image/qwen_image_pipeline.h"
#include "testing/temp_dir.h"
#include "testing/test_util.h"

namespace paradiff::pipeline {
namespace {

namespace fs = std::filesystem;

std::string tiny() {
  return testing::source_path("tests/fixtures/flux_pipeline/tiny");
}

// A copy of the tiny pipeline whose model_index.json is edited by `edit`.
std::string edited_copy(const testing::TempDir& dir,
                        const std::function<void(nlohmann::json&)>& edit) {
  const std::string folder = dir.file("pipe");
  fs::copy(tiny(), folder, fs::copy_options::recursive);
  nlohmann::json index;
  std::ifstream(folder + "/model_index.json") >> index;
  edit(index);
  std::ofstream(folder + "/model_index.json") << index.dump(2);
  return folder;
}

void expect_refused(const std::string& folder, const std::vector<std::string>& needles) {
  try {
    load_pipeline(folder, PipelineRuntime{});
    FAIL() << "accepted " << folder;
  } catch (const Error& e) {
    for (const auto& needle : needles)
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(PipelineRegistry, DispatchesOnTheClassName) {
  EXPECT_EQ(supported_pipeline_classes(),
            (std::vector<std::string>{"FluxPipeline", "QwenImagePipeline"}));
  const auto pipe = load_pipeline(tiny(), PipelineRuntime{});
  EXPECT_EQ(pipe->class_name(), "FluxPipeline");
  EXPECT_NE(dynamic_cast<FluxPipeline*>(pipe.get()), nullptr);
  const auto qwen = load_pipeline(testing::source_path("tests/fixtures/qwen_image_pipeline/tiny"),
                                  PipelineRuntime{});
  EXPECT_EQ(qwen->class_name(), "QwenImagePipeline");
  EXPECT_NE(dynamic_cast<QwenImagePipeline*>(qwen.get()), nullptr);
}

TEST(PipelineRegistry, RefusesUnsupportedPipelineAndComponentClasses) {
  testing::TempDir a, b, c, d, e;
  expect_refused(
      edited_copy(a, [](auto& j) { j["_class_name"] = "StableDiffusion3Pipeline"; }),
      {"pipeline class 'StableDiffusion3Pipeline' is not supported", "supported: FluxPipeline"});
  expect_refused(
      edited_copy(b,
                  [](auto& j) {
                    j["transformer"] = {"diffusers", "SD3Transformer2DModel"};
                  }),
      {"component 'transformer' is a SD3Transformer2DModel", "supported: FluxTransformer2DModel"});
  expect_refused(edited_copy(c, [](auto& j) { j.erase("vae"); }),
                 {"needs the component 'vae' (AutoencoderKL)"});
  expect_refused(edited_copy(d,
                             [](auto& j) {
                               j["tokenizer_2"] = {"transformers", 3};
                             }),
                 {"component 'tokenizer_2' must be [library, class] strings"});
  expect_refused(edited_copy(e, [](auto& j) { j.erase("_class_name"); }),
                 {"'_class_name' (the pipeline class) is required"});
  expect_refused("/nonexistent-folder", {"does not exist"});
}

TEST(ComponentCache, LoadsOnceAndFreesByPolicy) {
  ComponentCache keep;
  int loads = 0;
  const std::function<int()> load = [&] { return ++loads; };
  EXPECT_EQ(*keep.get<int>("a", load), 1);
  EXPECT_EQ(*keep.get<int>("a", load), 1);
  keep.end_stage({"a"});
  EXPECT_TRUE(keep.is_loaded("a"));
  EXPECT_EQ(keep.load_count("a"), 1);

  ComponentCache staged(ComponentCache::Policy::ReleaseAfterStage);
  EXPECT_EQ(*staged.get<int>("a", load), 2);
  staged.end_stage({"a"});
  EXPECT_FALSE(staged.is_loaded("a"));
  EXPECT_EQ(*staged.get<int>("a", load), 3);
  EXPECT_EQ(staged.load_count("a"), 2);
}

TEST(FluxPipeline, ComponentsLoadOncePerProcessAcrossCalls) {
  FluxPipeline pipe(tiny(), DType::F32);
  GenerationOptions o;
  o.height = o.width = 32;
  o.num_inference_steps = 1;
  o.max_sequence_length = 8;
  o = pipe.resolve(o);
  for (int call = 0; call < 2; ++call) {
    const auto c = pipe.encode_prompt({"a red circle"}, {}, o);
    pipe.decode(pipe.denoise(c, pipe.prepare_latents(o), o), o);
  }
  for (const char* name :
       {"tokenizer", "text_encoder", "tokenizer_2", "text_encoder_2", "transformer", "vae"})
    EXPECT_EQ(pipe.components().load_count(name), 1) << name;
}

}  // namespace
}  // namespace paradiff::pipeline
