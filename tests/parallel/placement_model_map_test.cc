// Model-level placement against accelerate's own get_balanced_memory + infer_auto_device_map +
// clean_device_map (golden maps from tools/make_fixtures/make_placement_fixtures.py, as
// diffusers' _determine_device_map calls them), check_device_map, and paradiff's refusals.
#include <gtest/gtest.h>

#include "paradiff/parallel/placement/model_device_map.h"
#include "placement_test_util.h"
#include "testing/temp_dir.h"

namespace paradiff::parallel {
namespace {

using testing::error_of;
using testing::placement_model;

SizeOptions size_options(const nlohmann::json& c) {
  SizeOptions options{parse_torch_dtype(c["dtype"].get<std::string>()), {}};
  for (const auto& p : c["special_dtypes"])
    options.special_dtypes[p[0].get<std::string>()] = parse_torch_dtype(p[1].get<std::string>());
  return options;
}

std::map<std::string, std::string> as_strings(const DeviceMap& map) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : map) out[k] = v.str();
  return out;
}

std::map<std::string, std::string> golden_map(const nlohmann::json& pairs) {
  std::map<std::string, std::string> out;
  for (const auto& p : pairs) out[p[0]] = testing::device_from_json(p[1]).str();
  return out;
}

TEST(ModelDeviceMap, ReproducesEveryGoldenMap) {
  const auto fixture = testing::load_placement_fixture("model_maps.json");
  int cases = 0, spills = 0, special = 0, strategies[4] = {0, 0, 0, 0};
  for (const auto& c : fixture["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const ModuleTree& tree = placement_model(c["model"]);
    const SizeOptions sizes = size_options(c);
    special += sizes.special_dtypes.empty() ? 0 : 1;
    const auto strategy = parse_model_strategy(c["strategy"].get<std::string>());
    ASSERT_TRUE(strategy.has_value());
    ++strategies[static_cast<int>(*strategy)];
    const MaxMemory given = testing::max_memory_from_json(c["max_memory"]);

    const MaxMemory budgets =
        *strategy == ModelStrategy::Sequential
            ? given
            : get_balanced_memory(tree, given, sizes, *strategy == ModelStrategy::BalancedLow0,
                                  c["user_set"].get<bool>());
    EXPECT_EQ(budgets.str(), testing::max_memory_from_json(c["balanced_memory"]).str());

    const InferredDeviceMap inferred = infer_auto_device_map(tree, budgets, sizes);
    EXPECT_EQ(as_strings(inferred.device_map), golden_map(c["device_map"]));

    std::vector<std::pair<std::string, int64_t>> minimum;
    for (const auto& [d, b] : inferred.minimum_required) minimum.emplace_back(d.str(), b);
    std::vector<std::pair<std::string, int64_t>> want_minimum;
    for (const auto& [d, b] : c["minimum_required"].items())
      want_minimum.emplace_back(d, b.get<int64_t>());
    EXPECT_EQ(minimum, want_minimum);
    EXPECT_EQ(inferred.warnings.size(), c["warnings"].size());

    const DeviceBytes bytes = bytes_per_device(tree, inferred.device_map, sizes);
    std::map<std::string, int64_t> per_device;
    for (const auto& [d, b] : bytes.per_device) per_device[d.str()] = b;
    std::map<std::string, int64_t> want_bytes;
    for (const auto& [d, b] : c["bytes_per_device"].items()) want_bytes[d] = b.get<int64_t>();
    EXPECT_EQ(per_device, want_bytes);
    spills += want_bytes.count("disk");
    ++cases;
  }
  EXPECT_GE(cases, 50);
  EXPECT_GE(spills, 5);
  EXPECT_GE(special, 2);
  for (int n : strategies) EXPECT_GT(n, 0);
}

TEST(ModelDeviceMap, FluxDevAutoOnTwoRanksAsPlacementMdSays) {
  const ModuleTree& flux = placement_model("flux_dev_transformer");
  const ModelPlacement p = place_model(flux, "auto", MaxMemory::parse("0=16GB,1=16GB", 2), 2,
                                       {SafetensorsDType::BF16, {}});
  EXPECT_EQ(p.max_memory.str(), "{0: 12750986560, 1: 16000000000}");
  ASSERT_EQ(p.bytes.per_device.size(), 2u);
  EXPECT_EQ(p.bytes.per_device[0].second, 11644359680);
  EXPECT_EQ(p.bytes.per_device[1].second, 12158456960);
  EXPECT_EQ(p.bytes.uncovered, 0);
  EXPECT_EQ(p.largest_layer_bytes, 679662592);  // one FluxTransformerBlock at bf16
  EXPECT_EQ(p.largest_layer_names.size(), 19u);
  // Definition order, cleaned: the embedders, then blocks 0-16 on rank 0, the rest on rank 1.
  EXPECT_EQ(p.device_map.front().first, "pos_embed");
  const auto json = placement_to_json(p);
  EXPECT_EQ(json["device_map"]["transformer_blocks.16"], 0);
  EXPECT_EQ(json["device_map"]["transformer_blocks.17"], 1);
  EXPECT_EQ(json["device_map"]["single_transformer_blocks"], 1);

  // One hidden-state handoff at the stage boundary, and the output back to rank 0.
  const StepTraffic traffic = step_traffic(flux, p.device_map, {4592 + 512, 3072, 2, 64});
  ASSERT_EQ(traffic.boundaries.size(), 2u);
  EXPECT_EQ(traffic.boundaries[0].after, "transformer_blocks.16");
  EXPECT_EQ(traffic.boundaries[0].before, "transformer_blocks.17");
  EXPECT_EQ(traffic.boundaries[0].bytes, int64_t{5104} * 3072 * 2);
  EXPECT_EQ(traffic.boundaries[1].from, 1);
  EXPECT_EQ(traffic.boundaries[1].to, 0);
  EXPECT_EQ(traffic.bytes_per_step, int64_t{5104} * (3072 + 64) * 2);
}

TEST(ModelDeviceMap, DiskEntriesRunOnTheMainRank) {
  const ModuleTree& flux = placement_model("flux_dev_transformer");
  const ModelPlacement p =
      place_model(flux, "auto", MaxMemory::parse("0=16GB", 1), 1, {SafetensorsDType::BF16, {}});
  EXPECT_EQ(p.bytes.per_device.back().first.str(), "disk");
  EXPECT_EQ(step_traffic(flux, p.device_map, {100, 3072, 2}).bytes_per_step, 0);
}

TEST(ModelDeviceMap, TrafficWithADiskSpillInTheMiddle) {
  const ModuleTree& flux = placement_model("flux_dev_transformer");
  const ModelPlacement p = place_model(flux, "sequential", MaxMemory::parse("0=5GB,1=5GB,2=5GB", 3),
                                       3, {SafetensorsDType::BF16, {}});
  const StepTraffic traffic = step_traffic(flux, p.device_map, {1000, 3072, 2});
  // Ranks 0, 1, 2 in turn, then the disk tail, which runs on rank 0: three handoffs, and the
  // output is already on rank 0.
  ASSERT_EQ(traffic.boundaries.size(), 3u);
  EXPECT_EQ(traffic.boundaries[2].from, 2);
  EXPECT_EQ(traffic.boundaries[2].to, 0);
  EXPECT_EQ(traffic.bytes_per_step, 3 * int64_t{1000} * 3072 * 2);
}

TEST(ModelDeviceMap, BalancedLow0NeedsEveryRankBelowTheCount) {
  // accelerate sums ranks 1..n-1 by index and fails with a KeyError when one is missing.
  const ModuleTree& clip = placement_model("tiny_text_encoder");
  EXPECT_EQ(error_of([&] {
              get_balanced_memory(clip, MaxMemory::parse("0=1000000,2=1000000", 3),
                                  {SafetensorsDType::F32, {}}, true);
            }),
            "max_memory has no entry for device 1: {0: 1000000, 2: 1000000}");
}

TEST(ModelDeviceMap, ABudgetThatFitsNothingIsRefusedWithAcceleratesMinimum) {
  const ModuleTree& flux = placement_model("flux_dev_transformer");
  EXPECT_EQ(error_of([&] {
              place_model(flux, "auto", MaxMemory::parse("0=100KB,1=100KB", 2), 2,
                          {SafetensorsDType::BF16, {}});
            }),
            "device_map=\"auto\" with max_memory {0: 100000, 1: 100000} places no module "
            "on any rank (everything would be streamed from disk). accelerate's minimum per "
            "device for this allocation:\n  - 0: 679662592 bytes required\n"
            "  - 1: 1579008 bytes required\n"
            "Give at least these budgets, or more ranks.");
}

TEST(ModelDeviceMap, ChecksExplicitMapsAsAccelerateDoes) {
  const auto fixture = testing::load_placement_fixture("model_maps.json");
  ASSERT_GE(fixture["checks"].size(), 4u);
  for (const auto& c : fixture["checks"]) {
    DeviceMap map;
    for (const auto& p : c["device_map"]) map.emplace_back(p[0], testing::device_from_json(p[1]));
    const ModuleTree& tree = placement_model(c["model"]);
    if (c["error"].is_null()) {
      EXPECT_NO_THROW(check_device_map(tree, map, 2));
    } else {
      EXPECT_EQ(error_of([&] { check_device_map(tree, map, 2); }), c["error"].get<std::string>());
    }
  }
}

TEST(ModelDeviceMap, ExplicitMapFileRefusals) {
  const ModuleTree& clip = placement_model("tiny_text_encoder");
  paradiff::testing::TempDir dir;
  auto place = [&](const std::string& json, int world) {
    std::ofstream(dir.file("map.json")) << json;
    return place_model(clip, dir.file("map.json"), MaxMemory(), world, {SafetensorsDType::F32, {}});
  };
  const ModelPlacement ok =
      place(R"({"embeddings": 0, "encoder.layers.0": 1, "encoder.layers.1": "disk",
                "final_layer_norm": 1})",
            2);
  EXPECT_EQ(ok.device_map.size(), 4u);
  EXPECT_EQ(ok.bytes.uncovered, 0);
  EXPECT_EQ(error_of([&] { place(R"({"": 0, "encoder.layer.7": 1})", 2); }),
            "The following device_map keys do not match any submodules in the model "
            "(CLIPTextModel): 'encoder.layer.7'");
  EXPECT_EQ(
      error_of([&] { place(R"({"embeddings": 0, "encoder": 2, "final_layer_norm": 0})", 2); }),
      "device_map puts 'encoder' on rank 2, but the world has 2 rank(s) (0..1)");
  EXPECT_NE(error_of([&] {
              place(R"({"": "cpu"})", 2);
            }).find("device_map['']: device 'cpu': every rank is a CPU process here"),
            std::string::npos);
  EXPECT_NE(error_of([&] { place(R"({"": -1})", 2); }).find("a rank must be >= 0"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              place(R"({"": 1.5})", 2);
            }).find("a device is a rank (an integer) or \"disk\""),
            std::string::npos);
  EXPECT_EQ(error_of([&] { place_model(clip, "fastest", MaxMemory(), 2, {}); }),
            "device_map 'fastest' is neither a strategy (auto, balanced, balanced_low_0, "
            "sequential) nor a .json file");
}

TEST(ModelDeviceMap, CleanMergesSubtreesOnOneDevice) {
  const DeviceMap raw = {{"a.0", DeviceKey::rank(0)},   {"a.1.x", DeviceKey::rank(0)},
                         {"a.1.y", DeviceKey::rank(0)}, {"b.0", DeviceKey::rank(1)},
                         {"b.1", DeviceKey::disk()},    {"c", DeviceKey::rank(1)}};
  const DeviceMap clean = clean_device_map(raw);
  ASSERT_EQ(clean.size(), 4u);
  EXPECT_EQ(clean[0].first, "a");
  EXPECT_EQ(clean[1].first, "b.0");
  EXPECT_EQ(clean[2].first, "b.1");
  EXPECT_EQ(clean[3].first, "c");
  const DeviceMap all = clean_device_map({{"a", DeviceKey::rank(0)}, {"b.1", DeviceKey::rank(0)}});
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].first, "");
}

}  // namespace
}  // namespace paradiff::parallel
