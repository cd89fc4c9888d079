#include "paradiff/parallel/placement/pipeline_device_map.h"

#include <algorithm>
#include <iomanip>
#include <map>
#include <sstream>

#include "paradiff/core/error.h"

namespace paradiff::parallel {

namespace {

std::string describe_turns(const std::vector<ComponentTurn>& turns) {
  size_t width = 0;
  for (const auto& t : turns) width = std::max(width, t.component.size());
  std::ostringstream out;
  for (const auto& t : turns) {
    out << "\n  " << std::left << std::setw(static_cast<int>(width)) << t.component << "  "
        << std::right << std::setw(12) << t.bytes << " bytes  ";
    const std::string who = t.device.is_disk() ? "disk" : "rank " + t.device.str();
    if (t.placed)
      out << "-> " << who << " (" << t.room << " bytes left before, " << t.room - t.bytes
          << " after)";
    else
      out << "does NOT fit: its turn was " << who << ", which had " << t.room << " bytes left";
  }
  return out.str();
}

}  // namespace

std::vector<ComponentTurn> assign_components_to_devices(
    const std::vector<ComponentSize>& components,
    const std::vector<std::pair<DeviceKey, int64_t>>& budgets) {
  PARADIFF_CHECK(!budgets.empty(), "no device to assign components to");
  std::vector<DeviceKey> cycle;
  for (const auto& b : budgets) cycle.push_back(b.first);
  for (auto it = budgets.rbegin(); it != budgets.rend(); ++it) cycle.push_back(it->first);
  std::map<DeviceKey, int64_t> room(budgets.begin(), budgets.end());

  std::vector<ComponentTurn> turns;
  size_t current = 0;
  for (const auto& component : components) {
    const DeviceKey device = cycle[current % cycle.size()];
    ComponentTurn turn{component.name, component.bytes, device, room[device], false};
    // A component that does not fit is not dealt: the same device's turn goes on.
    if (component.bytes <= room[device]) {
      turn.placed = true;
      room[device] -= component.bytes;
      ++current;
    }
    turns.push_back(turn);
  }
  return turns;
}

std::vector<ComponentSize> sort_components_by_size(std::vector<ComponentSize> components) {
  std::stable_sort(
      components.begin(), components.end(),
      [](const ComponentSize& a, const ComponentSize& b) { return a.bytes > b.bytes; });
  return components;
}

std::vector<std::pair<DeviceKey, int64_t>> sort_budgets(const MaxMemory& max_memory) {
  // MaxMemory is already in get_max_memory's order; diffusers then drops "cpu" (which paradiff
  // never has) and keeps "disk" as a device like any other.
  std::vector<std::pair<DeviceKey, int64_t>> budgets = max_memory.entries();
  std::stable_sort(budgets.begin(), budgets.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return budgets;
}

std::optional<PipelineDeviceMap> compute_pipeline_device_map(
    std::string_view device_map, const std::vector<ComponentSize>& components,
    const MaxMemory& max_memory) {
  // diffusers' SUPPORTED_DEVICE_MAP is "balanced", the accelerator type and "cpu"; on a CPU
  // host the accelerator type is "cpu" too.
  PARADIFF_CHECK(device_map == "balanced" || device_map == "cpu", device_map,
                 " not supported. Supported strategies are: balanced, cpu");
  if (device_map == "cpu") return std::nullopt;
  if (max_memory.empty()) return std::nullopt;

  const std::vector<ComponentSize> sorted = sort_components_by_size(components);
  PipelineDeviceMap out;
  out.turns = assign_components_to_devices(sorted, sort_budgets(max_memory));

  const bool all_placed = std::all_of(out.turns.begin(), out.turns.end(),
                                      [](const ComponentTurn& t) { return t.placed; });
  if (!all_placed) {
    size_t misfits = 0;
    for (const auto& t : out.turns) misfits += t.placed ? 0 : 1;
    throw Error(str_cat(
        "device_map=\"balanced\" cannot place every component within max_memory ", max_memory.str(),
        ":", describe_turns(out.turns), "\ndiffusers would offload ",
        misfits == 1 ? "that component" : "those components", " to \"cpu\"",
        misfits > 1 ? " and keep only the last of them in hf_device_map, dropping the others" : "",
        "; every rank is a CPU process here, so paradiff refuses. Give the ranks more memory "
        "(--max-memory) or use more ranks."));
  }
  for (const auto& t : out.turns) out.hf_device_map.emplace_back(t.component, t.device);

  for (const auto& component : sorted) {
    if (!component.loaded_on) continue;
    const DeviceKey target =
        std::find_if(out.hf_device_map.begin(), out.hf_device_map.end(), [&](const auto& e) {
          return e.first == component.name;
        })->second;
    PARADIFF_CHECK(target == DeviceKey::rank(*component.loaded_on), "device_map=\"balanced\" puts ",
                   component.name, " on ", target.is_disk() ? "disk" : "rank " + target.str(),
                   ", but it was passed in already loaded on rank ", *component.loaded_on,
                   " (diffusers would list it there and leave it where it is). The complete map:",
                   describe_turns(out.turns), "\nLoad it on that rank, or pass it unloaded.");
  }

  std::map<DeviceKey, int64_t> totals;
  for (const auto& t : out.turns) totals[t.device] += t.bytes;
  out.bytes_per_device.assign(totals.begin(), totals.end());
  return out;
}

nlohmann::ordered_json pipeline_map_to_json(const PipelineDeviceMap& map) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& [component, device] : map.hf_device_map) {
    if (device.is_disk())
      out[component] = "disk";
    else
      out[component] = device.rank_index();
  }
  return out;
}

}  // namespace paradiff::parallel
