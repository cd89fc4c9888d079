// Executing a model-level placement: which rank runs each execution unit of a model (an
// embedder, a transformer block, the output head), read from a cleaned device map. A unit runs
// on the rank that holds its tensors (each tensor goes where the map's longest key covering it
// points; accelerate may give a unit's tensor-less submodules, such as norm_out.silu, another
// rank, which changes nothing). The owner of a run of consecutive units computes them and hands
// the hidden states to the owner of the next run.
#pragma once

#include <string>
#include <vector>

#include "paradiff/parallel/placement/model_device_map.h"

namespace paradiff::parallel {

// One rank's consecutive units, in execution order.
struct Stage {
  int rank = 0;
  size_t first = 0, count = 0;  // indices into the unit list
};

class StageAssignment {
 public:
  // Resolves every unit's rank from the model's tensor names. A unit on "disk" runs on the main
  // rank (0), as accelerate runs offloaded layers on its main device, streaming its weights from
  // the checkpoint at each forward. Refused, naming the unit or key: a unit whose tensors the map
  // spreads over several devices (it runs whole on one), a tensor no key covers, a rank outside
  // [0, world_size), a unit with no tensor.
  StageAssignment(const DeviceMap& map, std::vector<std::string> units,
                  const std::vector<std::string>& tensor_names, int world_size);

  const std::vector<std::string>& units() const { return units_; }
  int owner(size_t unit) const { return owners_.at(unit); }
  int owner(const std::string& unit) const;  // throws naming an unknown unit
  bool owns(int rank, const std::string& unit) const { return owner(unit) == rank; }
  bool on_disk(size_t unit) const { return disk_.at(unit); }
  bool on_disk(const std::string& unit) const;
  // Consecutive units with one owner, merged.
  const std::vector<Stage>& stages() const { return stages_; }
  int world_size() const { return world_size_; }

 private:
  std::vector<std::string> units_;
  std::vector<int> owners_;
  std::vector<bool> disk_;
  std::vector<Stage> stages_;
  int world_size_;
};

}  // namespace paradiff::parallel
