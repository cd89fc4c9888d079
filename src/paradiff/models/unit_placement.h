// What a transformer needs to run under a model-level placement (accelerate's device_map
// executed across the ranks of a group), shared by every model that supports it:
// - UnitPlacement: which execution units (embedders, blocks, the output head) this rank owns,
//   holds, or streams from "disk", and which checkpoint tensors it therefore binds;
// - hidden_state_chain: the owners that hand the hidden states on, in order;
// - UnitStreamer: the "disk" units one rank runs, each one's tensors read from the checkpoint in
//   a background thread while the unit before it computes, handed out as a weight source.
#pragma once

#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "paradiff/dist/communicator.h"
#include "paradiff/models/weight_source.h"
#include "paradiff/parallel/placement/stage_assignment.h"

namespace paradiff::models {

class UnitPlacement {
 public:
  // `units`: the model's execution units in the order its forward runs them. `group` must
  // outlive the placement.
  UnitPlacement(const parallel::DeviceMap& map, std::vector<std::string> units,
                const std::vector<std::string>& tensor_names, dist::Communicator& group);

  const parallel::StageAssignment& assignment() const { return assignment_; }
  dist::Communicator& group() const { return *group_; }
  int owner(const std::string& unit) const { return assignment_.owner(unit); }
  bool owns(const std::string& unit) const { return owner(unit) == group_->rank(); }
  // Owned and held: a unit on "disk" is streamed at each forward instead.
  bool binds(const std::string& unit) const { return owns(unit) && !assignment_.on_disk(unit); }
  // Whether this rank binds a checkpoint tensor (the unit it lies under is one it binds); a
  // tensor under no unit is bound, and so reported unused, as without a placement.
  bool binds_tensor(const std::string& name) const;

  // A refusal that a model's forward relies on, naming the units and their ranks: `units` must
  // share one owner (`why` says what they do together).
  void require_one_owner(const std::vector<std::string>& units, const std::string& why) const;

 private:
  parallel::StageAssignment assignment_;
  dist::Communicator* group_;
};

// A transformer's placement: its units run as one conditioning unit (units[0]), then
// `embedders` units that start the joint hidden states together, the blocks, and the output head
// norm_out + proj_out (the last two). Refused, naming the units and their ranks: embedders on
// different ranks, norm_out and proj_out apart. Any unit may be on "disk" (streamed by rank 0).
std::shared_ptr<const UnitPlacement> place_transformer_units(
    const parallel::DeviceMap& map, std::vector<std::string> units, size_t embedders,
    const std::vector<std::string>& tensor_names, dist::Communicator& group);

// The owners of the units from `first` on, consecutive units of one owner merged: the chain
// along which the hidden states travel (the conditioning unit before `first` is not in it).
std::vector<parallel::Stage> hidden_state_chain(const parallel::StageAssignment& assignment,
                                                size_t first);

// A unit's tensors read from `source`: 2-D ones (linear weights) in `compute`, everything else
// F32, as ModuleLoader binds them. A tensor the file holds in that dtype is a view of the
// mapping; its pages are touched so that it is in memory when the unit runs.
std::map<std::string, Tensor> read_unit(const WeightSource& source, const std::string& unit,
                                        DType compute);

class UnitStreamer {
 public:
  // The "disk" units this rank runs from unit `first` on, in order; the first one's read starts
  // at once. `source` must outlive the streamer.
  UnitStreamer(const parallel::StageAssignment& assignment, int rank, size_t first,
               const WeightSource& source, DType compute);
  ~UnitStreamer();
  UnitStreamer(const UnitStreamer&) = delete;
  UnitStreamer& operator=(const UnitStreamer&) = delete;

  // The tensors of unit `unit` (the next "disk" unit, in order), and the read of the one after
  // it started. The source lives until the next call or the streamer's end.
  const WeightSource& next(size_t unit);

 private:
  void read_ahead();

  const parallel::StageAssignment& assignment_;
  const WeightSource& source_;
  DType compute_;
  std::vector<size_t> units_;
  size_t next_ = 0;
  std::future<std::map<std::string, Tensor>> ahead_;
  std::unique_ptr<WeightSource> current_;
};

}  // namespace paradiff::models
