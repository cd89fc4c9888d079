// Shared by the placement tests: reading the golden fixtures that
// tools/make_fixtures/make_placement_fixtures.py writes into tests/fixtures/placement/.
#pragma once

#include <fstream>
#include <functional>
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "paradiff/core/error.h"
#include "paradiff/parallel/placement/memory_budget.h"
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

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace paradiff::parallel::testing
