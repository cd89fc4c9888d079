// Shared by the placement tests: reading the golden fixtures that
// tools/make_fixtures/make_placement_fixtures.py writes into tests/fixtures/placement/.
#pragma once

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "paradiff/core/error.h"
#include "paradiff/parallel/placement/memory_budget.h"
#include "paradiff/parallel/placement/model_device_map.h"
#include "paradiff/parallel/placement/module_sizes.h"
#include "testing/test_util.h"

namespace paradiff::parallel::testing {

inline nlohmann::json load_placement_fixture(const std::string& name) {
  const std::string path = paradiff::testing::source_path("tests/fixtures/placement/" + name);
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open");
  return nlohmann::json::parse(in);
}

inline const ModuleTree& placement_model(const std::string& name) {
  static std::map<std::string, ModuleTree> cache;
  auto it = cache.find(name);
  if (it == cache.end())
    it = cache
             .emplace(name, ModuleTree::from_json_file(paradiff::testing::source_path(
                                "tests/fixtures/placement/models/" + name + ".json")))
             .first;
  return it->second;
}

inline DeviceKey device_from_json(const nlohmann::json& key) {
  if (key.is_number_integer()) return DeviceKey::rank(key.get<int>());
  return DeviceKey::parse(key.get<std::string>());
}

// [[key, value], ...] as the fixtures write a Python max_memory dict; values are bytes (an int,
// or a float where accelerate multiplied by 0.9: its floor is the same bound) or size strings.
// "cpu" entries are skipped: diffusers drops them at pipeline level, and paradiff has none.
inline MaxMemory max_memory_from_json(const nlohmann::json& pairs) {
  std::vector<std::pair<DeviceKey, int64_t>> entries;
  for (const auto& pair : pairs) {
    if (pair[0].is_string() && pair[0] == "cpu") continue;
    const auto& value = pair[1];
    int64_t bytes = value.is_string()           ? convert_file_size_to_int(value.get<std::string>())
                    : value.is_number_integer() ? value.get<int64_t>()
                                                : static_cast<int64_t>(value.get<double>());
    entries.emplace_back(device_from_json(pair[0]), bytes);
  }
  return MaxMemory(std::move(entries));
}

// A module tree built from a checkpoint's headers against the meta model the fixture script
// recorded: node by node (names, classes, tensors: name, size, dtype, kind), the no-split classes,
// the state-dict names and the module sizes at f32 and bf16.
inline void expect_same_module_tree(const ModuleTree& got, const ModuleTree& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const auto& g = got.node(static_cast<int>(i));
    const auto& w = want.node(static_cast<int>(i));
    EXPECT_EQ(g.name, w.name);
    EXPECT_EQ(g.class_name, w.class_name) << w.name;
    ASSERT_EQ(g.tensors.size(), w.tensors.size()) << w.name;
    for (size_t t = 0; t < w.tensors.size(); ++t) {
      EXPECT_EQ(g.tensors[t].name, w.tensors[t].name) << w.name;
      EXPECT_EQ(g.tensors[t].numel, w.tensors[t].numel) << w.name;
      EXPECT_EQ(g.tensors[t].dtype, w.tensors[t].dtype) << w.name;
      EXPECT_EQ(g.tensors[t].kind, w.tensors[t].kind) << w.name;
    }
  }
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(sorted(got.no_split()), sorted(want.no_split()));
  EXPECT_EQ(got.state_dict_names(), want.state_dict_names());
  for (auto dtype : {SafetensorsDType::F32, SafetensorsDType::BF16}) {
    const auto g = compute_module_sizes(got, dtype);
    const auto w = compute_module_sizes(want, dtype);
    EXPECT_EQ(g.keys(), w.keys());
    for (const auto& k : w.keys()) EXPECT_EQ(g[k], w[k]) << k;
  }
}

// Places `tree` for every golden case of `model` in model_maps.json whose budget fits something
// (cases with special dtypes, which place_model is not given here, left out) and expects
// accelerate's map (and, with `bytes`, its bytes per device); returns the cases checked.
inline int expect_golden_maps(const ModuleTree& tree, const std::string& model,
                              bool bytes = false) {
  const auto fixture = load_placement_fixture("model_maps.json");
  int checked = 0;
  for (const auto& c : fixture["cases"]) {
    if (c["model"] != model) continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    const MaxMemory given = max_memory_from_json(c["max_memory"]);
    if (c.contains("minimum_required") && c["minimum_required"].size() == given.entries().size())
      continue;  // fits nothing
    if (c.contains("special_dtypes") && !c["special_dtypes"].empty()) continue;
    SizeOptions sizes;
    sizes.dtype = parse_torch_dtype(c["dtype"].get<std::string>());
    const auto placement = place_model(tree, c["strategy"].get<std::string>(), given,
                                       static_cast<int>(given.entries().size()), sizes);
    std::map<std::string, std::string> got, want;
    for (const auto& [k, v] : placement.device_map) got[k] = v.str();
    for (const auto& p : c["device_map"]) want[p[0]] = device_from_json(p[1]).str();
    EXPECT_EQ(got, want);
    if (bytes) {
      std::map<std::string, int64_t> got_bytes, want_bytes;
      for (const auto& [device, n] : placement.bytes.per_device) got_bytes[device.str()] = n;
      for (const auto& [device, n] : c["bytes_per_device"].items())
        want_bytes[device == "disk" ? DeviceKey::parse("disk").str()
                                    : DeviceKey::rank(std::stoi(device)).str()] = n.get<int64_t>();
      EXPECT_EQ(got_bytes, want_bytes);
    }
    ++checked;
  }
  return checked;
}

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace paradiff::parallel::testing
