// Pipeline-level placement against diffusers' own _get_final_device_map("balanced") (golden),
// and paradiff's refusals where diffusers offloads to "cpu", drops a component from the map, or
// leaves a passed-in component where it is.
#include <gtest/gtest.h>

#include "paradiff/parallel/placement/pipeline_device_map.h"
#include "placement_test_util.h"

namespace paradiff::parallel {
namespace {

using testing::error_of;

std::vector<ComponentSize> components_of(const nlohmann::json& c) {
  std::vector<ComponentSize> out;
  for (const auto& p : c["components"]) out.push_back({p[0], p[1].get<int64_t>(), std::nullopt});
  return out;
}

TEST(PipelineDeviceMap, ReproducesEveryGoldenMapOrRefusesWhereDiffusersOffloads) {
  const auto fixture = testing::load_placement_fixture("pipeline_maps.json");
  int placed = 0, refused = 0;
  for (const auto& c : fixture["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const auto components = components_of(c);
    const MaxMemory budgets = testing::max_memory_from_json(c["max_memory"]);
    std::map<std::string, std::string> golden;
    for (const auto& p : c["device_map"])
      golden[p[0]] = p[1] == "cpu" ? "cpu" : testing::device_from_json(p[1]).str();

    // The faithful deal: every component diffusers placed on a device is placed there, the
    // one it recorded under "cpu" did not fit, and so did any it dropped from the map.
    const auto turns =
        assign_components_to_devices(sort_components_by_size(components), sort_budgets(budgets));
    std::vector<std::string> misfits;
    for (const auto& t : turns) {
      if (t.placed) {
        EXPECT_EQ(golden[t.component], t.device.str()) << t.component;
      } else {
        misfits.push_back(t.component);
        EXPECT_TRUE(!golden.count(t.component) || golden[t.component] == "cpu") << t.component;
      }
    }
    if (!misfits.empty()) {
      EXPECT_EQ(golden[misfits.back()], "cpu");
    }
    EXPECT_EQ(golden.size(), turns.size() - (misfits.empty() ? 0 : misfits.size() - 1));

    if (misfits.empty()) {
      const auto map = compute_pipeline_device_map("balanced", components, budgets);
      ASSERT_TRUE(map.has_value());
      std::map<std::string, std::string> got;
      for (const auto& [k, v] : map->hf_device_map) got[k] = v.str();
      EXPECT_EQ(got, golden);
      ++placed;
    } else {
      const std::string message =
          error_of([&] { compute_pipeline_device_map("balanced", components, budgets); });
      for (const auto& t : turns) EXPECT_NE(message.find(t.component), std::string::npos);
      EXPECT_NE(message.find("does NOT fit"), std::string::npos) << message;
      ++refused;
    }
  }
  EXPECT_GE(placed, 6);
  EXPECT_GE(refused, 4);
}

TEST(PipelineDeviceMap, TheSeedExample) {
  // placement.md §4: the text encoders alone, balanced over 2 x 16 GB.
  const auto map = compute_pipeline_device_map(
      "balanced", {{"text_encoder", 246121576, {}}, {"text_encoder_2", 9787813888, {}}},
      MaxMemory::parse("0=16GB,1=16GB", 2));
  ASSERT_TRUE(map.has_value());
  EXPECT_EQ(pipeline_map_to_json(*map).dump(), R"({"text_encoder_2":0,"text_encoder":1})");
  ASSERT_EQ(map->bytes_per_device.size(), 2u);
  EXPECT_EQ(map->bytes_per_device[0].second, 9787813888);
}

TEST(PipelineDeviceMap, AutoIsRefusedWithDiffusersMessage) {
  EXPECT_EQ(error_of([] { compute_pipeline_device_map("auto", {}, MaxMemory()); }),
            "auto not supported. Supported strategies are: balanced, cpu");
  EXPECT_EQ(error_of([] { compute_pipeline_device_map("sequential", {}, MaxMemory()); }),
            "sequential not supported. Supported strategies are: balanced, cpu");
  EXPECT_FALSE(compute_pipeline_device_map("cpu", {{"vae", 1, {}}}, MaxMemory()).has_value());
  EXPECT_FALSE(compute_pipeline_device_map("balanced", {{"vae", 1, {}}}, MaxMemory()).has_value());
}

TEST(PipelineDeviceMap, RefusesWhereDiffusersWouldDropAComponent) {
  // 2 x 8 GB: the transformer and T5 both miss their turn; diffusers keeps only T5 under "cpu"
  // and the transformer vanishes from hf_device_map.
  const std::vector<ComponentSize> flux = {{"text_encoder", 246121576, {}},
                                           {"text_encoder_2", 9787813888, {}},
                                           {"transformer", 23802816640, {}},
                                           {"vae", 167639366, {}}};
  EXPECT_EQ(
      error_of([&] {
        compute_pipeline_device_map("balanced", flux, MaxMemory::parse("0=8GB,1=8GB", 2));
      }),
      "device_map=\"balanced\" cannot place every component within max_memory "
      "{0: 8000000000, 1: 8000000000}:\n"
      "  transformer      23802816640 bytes  does NOT fit: its turn was rank 0, which had "
      "8000000000 bytes left\n"
      "  text_encoder_2    9787813888 bytes  does NOT fit: its turn was rank 0, which had "
      "8000000000 bytes left\n"
      "  text_encoder       246121576 bytes  -> rank 0 (8000000000 bytes left before, 7753878424 "
      "after)\n"
      "  vae                167639366 bytes  -> rank 1 (8000000000 bytes left before, 7832360634 "
      "after)\n"
      "diffusers would offload those components to \"cpu\" and keep only the last of them in "
      "hf_device_map, dropping the others; every rank is a CPU process here, so paradiff "
      "refuses. Give the ranks more memory (--max-memory) or use more ranks.");
}

TEST(PipelineDeviceMap, RefusesToLeaveAPassedComponentUnmoved) {
  const std::vector<ComponentSize> components = {{"transformer", 100, 1}, {"vae", 10, {}}};
  const std::string message = error_of([&] {
    compute_pipeline_device_map("balanced", components, MaxMemory::parse("0=1000,1=1000", 2));
  });
  EXPECT_NE(message.find("puts transformer on rank 0, but it was passed in already loaded on "
                         "rank 1"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("vae"), std::string::npos);
  const std::vector<ComponentSize> in_place = {{"transformer", 100, 0}, {"vae", 10, {}}};
  EXPECT_NO_THROW(
      compute_pipeline_device_map("balanced", in_place, MaxMemory::parse("0=1000,1=1000", 2)));
}

}  // namespace
}  // namespace paradiff::parallel
