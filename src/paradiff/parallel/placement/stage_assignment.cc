#include "paradiff/parallel/placement/stage_assignment.h"

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
    int owner = -1;
    std::string owner_key;
    for (const std::string& tensor : tensor_names) {
      if (!covers(unit, tensor) || tensor == unit) continue;
      const std::pair<std::string, DeviceKey>* best = nullptr;
      for (const auto& entry : map)
        if (covers(entry.first, tensor) && (!best || entry.first.size() > best->first.size()))
          best = &entry;
      PARADIFF_CHECK(best != nullptr, "device_map gives no rank for '", tensor, "'");
      PARADIFF_CHECK(best->second.is_rank(), "device_map puts '", best->first,
                     "' on \"disk\": streaming blocks from disk is planned (see paradiff "
                     "inspect) but not executed yet; give it a rank");
      const int rank = best->second.rank_index();
      PARADIFF_CHECK(rank < world_size, "device_map puts '", best->first, "' on rank ", rank,
                     ", but the placement has ", world_size, " rank(s)");
      PARADIFF_CHECK(owner < 0 || owner == rank, "device_map splits '", unit, "' between rank ",
                     owner, " ('", owner_key, "') and rank ", rank, " ('", best->first,
                     "'); it runs whole on one rank: map '", unit, "' (or a module above it)");
      owner = rank;
      owner_key = best->first;
    }
    PARADIFF_CHECK(owner >= 0, "placement: the model has no tensor under '", unit, "'");
    owners_.push_back(owner);
  }
  for (size_t i = 0; i < units_.size(); ++i) {
    if (stages_.empty() || stages_.back().rank != owners_[i]) stages_.push_back({owners_[i], i, 0});
    ++stages_.back().count;
  }
}

int StageAssignment::owner(const std::string& unit) const {
  for (size_t i = 0; i < units_.size(); ++i)
    if (units_[i] == unit) return owners_[i];
  throw Error(str_cat("placement: no execution unit '", unit, "'"));
}

}  // namespace paradiff::parallel
