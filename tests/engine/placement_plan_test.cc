// Placement from a pipeline folder's headers: the FLUX transformer's module tree equals the one
// diffusers builds (the meta-model fixture), the component sizes equal the ones diffusers'
// device_map="balanced" compares, and the plans equal diffusers' and accelerate's golden maps.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "paradiff/engine/placement_plan.h"
#include "paradiff/io/checkpoint.h"
#include "paradiff/models/flux/flux_module_tree.h"
#include "paradiff/models/vae/vae_module_tree.h"
#include "paradiff/pipeline/component_module_tree.h"
#include "parallel/placement_test_util.h"
#include "testing/temp_dir.h"
#include "testing/test_util.h"

namespace paradiff::engine {
namespace {

using parallel::testing::error_of;
using parallel::testing::load_placement_fixture;
using parallel::testing::placement_model;

const std::string kTiny = "tests/fixtures/flux_pipeline/tiny";

std::string tiny() {
  return paradiff::testing::source_path(kTiny);
}

TEST(PlacementPlan, FluxTreeFromHeadersIsDiffusersMetaModel) {
  const parallel::ModuleTree got =
      models::flux::flux_transformer_module_tree(tiny() + "/transformer");
  parallel::testing::expect_same_module_tree(got, placement_model("tiny_transformer"));
}

const std::string kTinyQwen = "tests/fixtures/qwen_image_pipeline/tiny";

// The golden cases whose names start with `prefix` ("tiny/": the FLUX pipeline, "qwen_tiny/":
// Qwen-Image, whose text encoder diffusers builds with its vision tower and RoPE buffers).
TEST(PlacementPlan, ComponentSizesAreDiffusers) {
  const auto fixture = load_placement_fixture("pipeline_maps.json");
  for (const auto& [prefix, folder] :
       {std::pair{"tiny/", kTiny}, std::pair{"qwen_tiny/", kTinyQwen}}) {
    SCOPED_TRACE(folder);
    const auto index = pipeline::ModelIndex::load(paradiff::testing::source_path(folder));
    const auto sizes = pipeline::component_sizes(index, SafetensorsDType::F32);
    int checked = 0;
    for (const auto& c : fixture["cases"]) {
      if (c["name"].get<std::string>().rfind(prefix, 0) != 0) continue;
      ASSERT_EQ(sizes.size(), c["components"].size());
      for (size_t i = 0; i < sizes.size(); ++i) {
        EXPECT_EQ(sizes[i].name, c["components"][i][0].get<std::string>());
        EXPECT_EQ(sizes[i].bytes, c["components"][i][1].get<int64_t>()) << sizes[i].name;
      }
      ++checked;
    }
    EXPECT_GT(checked, 0);
  }
}

TEST(PlacementPlan, PipelineBalancedIsDiffusersMap) {
  const auto fixture = load_placement_fixture("pipeline_maps.json");
  int checked = 0;
  for (const auto& c : fixture["cases"]) {
    const std::string name = c["name"];
    if (name != "tiny/3 ranks" && name != "qwen_tiny/2 ranks" && name != "qwen_tiny/3 ranks")
      continue;
    SCOPED_TRACE(name);
    PlacementOptions o;
    o.model = paradiff::testing::source_path(name.rfind("qwen", 0) == 0 ? kTinyQwen : kTiny);
    o.device_map = "balanced";
    o.world_size = static_cast<int>(c["max_memory"].size());
    std::string budget;
    for (const auto& e : c["max_memory"])
      budget += (budget.empty() ? "" : ",") + std::to_string(e[0].get<int>()) + "=" +
                std::to_string(e[1].get<int64_t>());
    o.max_memory = budget;
    const PlacementPlan plan = plan_placement(o);
    ASSERT_TRUE(plan.pipeline.has_value());
    nlohmann::ordered_json want = nlohmann::ordered_json::object();
    for (const auto& e : c["device_map"]) want[e[0].get<std::string>()] = e[1];
    EXPECT_EQ(placement_plan_to_json(plan)["pipeline"], want);
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

TEST(PlacementPlan, TransformerMapsAreAccelerates) {
  const auto fixture = load_placement_fixture("model_maps.json");
  int checked = 0;
  for (const auto& c : fixture["cases"]) {
    if (c["model"] != "tiny_transformer" || !c["special_dtypes"].empty() || !c["user_set"])
      continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    PlacementOptions o;
    o.model = tiny();
    o.transformer_device_map = c["strategy"].get<std::string>();
    o.dtype = c["dtype"] == "bfloat16" ? DType::BF16 : DType::F32;
    std::string budget;
    int ranks = 0;
    for (const auto& e : c["max_memory"]) {
      if (!e[0].is_number_integer() || !e[1].is_number_integer()) goto skip;
      budget += (budget.empty() ? "" : ",") + std::to_string(e[0].get<int>()) + "=" +
                std::to_string(e[1].get<int64_t>());
      ranks = std::max(ranks, e[0].get<int>() + 1);
    }
    {
      o.max_memory = budget;
      o.world_size = ranks;
      const PlacementPlan plan = plan_placement(o);
      nlohmann::json want = nlohmann::json::object();  // keys compared, not their order
      for (const auto& e : c["device_map"]) want[e[0].get<std::string>()] = e[1];
      EXPECT_EQ(nlohmann::json(placement_plan_to_json(plan)["transformer"]), want);
      ++checked;
    }
  skip:;
  }
  EXPECT_GT(checked, 0);
}

// AutoencoderKL's tree from the headers is the meta model's, module for module, and the VAE
// maps are accelerate's for every golden tiny_vae case (fp32 and bf16, 2 and 3 ranks, disk).
TEST(PlacementPlan, VaeTreeAndMapsAreAccelerates) {
  const parallel::ModuleTree got = models::vae::autoencoder_kl_module_tree(tiny() + "/vae");
  parallel::testing::expect_same_module_tree(got, placement_model("tiny_vae"));
  const auto fixture = load_placement_fixture("model_maps.json");
  int checked = 0;
  for (const auto& c : fixture["cases"]) {
    if (c["model"] != "tiny_vae") continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    PlacementOptions o;
    o.model = tiny();
    o.vae_device_map = c["strategy"].get<std::string>();
    o.dtype = c["dtype"] == "bfloat16" ? DType::BF16 : DType::F32;
    std::string budget;
    for (const auto& e : c["max_memory"])
      budget += (budget.empty() ? "" : ",") + std::to_string(e[0].get<int>()) + "=" +
                std::to_string(e[1].get<int64_t>());
    o.max_memory = budget;
    o.world_size = static_cast<int>(c["max_memory"].size());
    const PlacementPlan plan = plan_placement(o);
    nlohmann::json want_map = nlohmann::json::object();  // keys compared, not their order
    for (const auto& e : c["device_map"]) want_map[e[0].get<std::string>()] = e[1];
    EXPECT_EQ(nlohmann::json(placement_plan_to_json(plan)["vae"]), want_map);
    ++checked;
  }
  EXPECT_EQ(checked, 5);
}

TEST(PlacementPlan, Refusals) {
  PlacementOptions o;
  o.model = tiny();
  o.world_size = 2;
  o.max_memory = "0=1GB,1=1GB";
  o.device_map = "auto";
  EXPECT_NE(error_of([&] { plan_placement(o); }).find("auto not supported"), std::string::npos);
  o.device_map.clear();
  o.max_memory = "0=16gb";
  EXPECT_NE(error_of([&] { plan_placement(o); }).find("lowercase"), std::string::npos);
  o.max_memory = "0=1GB,2=1GB";
  EXPECT_NE(error_of([&] { plan_placement(o); }).find("2"), std::string::npos);
}

}  // namespace
}  // namespace paradiff::engine
