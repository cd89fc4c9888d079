// Pipeline-level placement: which rank holds each whole component (text encoders, transformer,
// VAE), computed as diffusers' `DiffusionPipeline.from_pretrained(device_map="balanced")` does
// (pipelines/pipeline_loading_utils.py: _get_final_device_map and
// _assign_components_to_devices): components sorted by size, largest first; devices sorted by
// budget, largest first; components dealt out in snake order (0, 1, ..., n-1, n-1, ..., 0); a
// component is only ever tried on the device whose turn it is.
//
// Where diffusers gives a component no usable place, paradiff refuses instead, printing the
// complete assignment: a component that does not fit the device whose turn it is goes to "cpu"
// in diffusers (which means nothing when every rank is a CPU process), and when two do not fit
// only the last is recorded, the other silently dropped from the map; a component the caller
// already holds is counted in diffusers' map but never moved to where the map puts it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "paradiff/parallel/placement/memory_budget.h"

namespace paradiff::parallel {

struct ComponentSize {
  std::string name;   // "transformer", "text_encoder_2", ...
  int64_t bytes = 0;  // compute_module_sizes(component, dtype)[""]
  // The rank that already holds the component (diffusers' passed-in component), if any.
  std::optional<int> loaded_on;
};

// One step of the deal: the component, the device whose turn it was, the room that device had
// left, and whether the component went there.
struct ComponentTurn {
  std::string component;
  int64_t bytes = 0;
  DeviceKey device = DeviceKey::disk();
  int64_t room = 0;
  bool placed = false;
};

// _assign_components_to_devices, faithfully: `components` largest first, `budgets` in the
// order of the cycle (largest first). Every component gets a turn in the result.
std::vector<ComponentTurn> assign_components_to_devices(
    const std::vector<ComponentSize>& components,
    const std::vector<std::pair<DeviceKey, int64_t>>& budgets);

// _get_final_device_map's orderings: components by size, largest first (ties keep the given
// order); devices by budget, largest first (ties in get_max_memory's order).
std::vector<ComponentSize> sort_components_by_size(std::vector<ComponentSize> components);
std::vector<std::pair<DeviceKey, int64_t>> sort_budgets(const MaxMemory& max_memory);

struct PipelineDeviceMap {
  std::vector<std::pair<std::string, DeviceKey>> hf_device_map;  // largest component first
  std::vector<std::pair<DeviceKey, int64_t>> bytes_per_device;   // ranks ascending, then disk
  std::vector<ComponentTurn> turns;
};

// `device_map` as diffusers accepts it: "balanced" computes the map; "cpu" means no map (every
// rank loads the components it needs; diffusers' device-type map); anything else, "auto"
// included, is refused with diffusers' message ("auto not supported. Supported strategies are:
// balanced, cpu"). nullopt when there is no map (also when max_memory has no device, where
// diffusers returns None).
std::optional<PipelineDeviceMap> compute_pipeline_device_map(
    std::string_view device_map, const std::vector<ComponentSize>& components,
    const MaxMemory& max_memory);

nlohmann::ordered_json pipeline_map_to_json(const PipelineDeviceMap& map);

}  // namespace paradiff::parallel
