#include "paradiff/parallel/placement/stage_assignment.h"

#include <optional>

#include "paradiff/core/error.h"

namespace paradiff::parallel {

namespace {

// `key` covers `name` when they are equal, key is the root (""), or name lies under key.
bool covers(const std::string& key, const std::string& name) {
  return key.empty() || key == name ||
         (name.size() > key.size() && name.compare(0, key.size(), key) == 0 &&
          name[key.size()] == '.');
}

}  // namespace

StageAssignment::StageAssignment(const DeviceMap& map, std::vector<std::string> units,
                                 const std::vector<std::string>& tensor_names, int world_size)
    : units_(std::move(units)), world_size_(world_size) {
  PARADIFF_CHECK(world_size >= 1, "a placement needs at least one rank, got ", world_size);
  for (const std::string& unit : units_) {
    std::optional<DeviceKey> device;
    std::string device_key;
    for (const std::string& tensor : tensor_names) {
      if (!covers(unit, tensor) || tensor == unit) continue;
      const std::pair<std::string, DeviceKey>* best = nullptr;
      for (const auto& entry : map)
        if (covers(entry.first, tensor) && (!best || entry.first.size() > best->first.size()))
          best = &entry;
      PARADIFF_CHECK(best != nullptr, "device_map gives no rank for '", tensor, "'");
      PARADIFF_CHECK(best->second.is_disk() || best->second.rank_index() < world_size,
                     "device_map puts '", best->first, "' on rank ", best->second.str(),
                     ", but the placement has ", world_size, " rank(s)");
      PARADIFF_CHECK(!device || *device == best->second, "device_map splits '", unit, "' between ",
                     device ? device->str() : "", " ('", device_key, "') and ", best->second.str(),
                     " ('", best->first, "'); it runs whole on one rank: map '", unit,
                     "' (or a module above it)");
      device = best->second;
      device_key = best->first;
    }
    PARADIFF_CHECK(device.has_value(), "placement: the model has no tensor under '", unit, "'");
    owners_.push_back(device->is_disk() ? 0 : device->rank_index());
    disk_.push_back(device->is_disk());
  }
  for (size_t i = 0; i < units_.size(); ++i) {
    if (stages_.empty() || stages_.back().rank != owners_[i]) stages_.push_back({owners_[i], i, 0});
    ++stages_.back().count;
  }
}

bool StageAssignment::on_disk(const std::string& unit) const {
  for (size_t i = 0; i < units_.size(); ++i)
    if (units_[i] == unit) return disk_[i];
  throw Error(str_cat("placement: no execution unit '", unit, "'"));
}

int StageAssignment::owner(const std::string& unit) const {
  for (size_t i = 0; i < units_.size(); ++i)
    if (units_[i] == unit) return owners_[i];
  throw Error(str_cat("placement: no execution unit '", unit, "'"));
}

}  // namespace paradiff::parallel
