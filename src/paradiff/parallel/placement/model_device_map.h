// Model-level placement: which rank holds which layers of one model, computed as accelerate
// computes a `device_map` for `from_pretrained(device_map=...)` in diffusers
// (model_loading_utils._determine_device_map): get_balanced_memory, then infer_auto_device_map,
// then clean_device_map; an explicit map is checked as check_device_map checks it. Ported rule
// for rule from accelerate 1.15 (src/accelerate/utils/modeling.py), with "device" = rank.
//
// Deviations, each because a rank is a CPU process and a map must be executable as given:
// - there is no "cpu" device, so only the first rank keeps room for the largest layer
//   (accelerate's main devices are the first GPU and "cpu");
// - a "disk" budget is ignored when counting ranks in get_balanced_memory (accelerate raises
//   there: torch.device("disk") is not a device);
// - an explicit map with a key that names no module, or a rank outside the world, is refused
//   (accelerate warns about the first and does not check the second);
// - a budget that fits nothing on any rank is refused with accelerate's "minimum required" per
//   device (accelerate logs it and puts the whole model on disk);
// - fallback_allocation (off in diffusers) is not implemented.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "paradiff/parallel/placement/memory_budget.h"
#include "paradiff/parallel/placement/module_sizes.h"

namespace paradiff::parallel {

// hf_device_map: module path (or "" for the whole model) -> device, in module definition order.
using DeviceMap = std::vector<std::pair<std::string, DeviceKey>>;

enum class ModelStrategy { Auto, Balanced, BalancedLow0, Sequential };
// "auto", "balanced", "balanced_low_0", "sequential"; nullopt for anything else.
std::optional<ModelStrategy> parse_model_strategy(std::string_view name);
const char* model_strategy_name(ModelStrategy strategy);

struct SizeOptions {
  std::optional<SafetensorsDType> dtype;  // the dtype the weights are loaded in
  SpecialDTypes special_dtypes;           // per tensor name (e.g. _keep_in_fp32_modules)
};

// get_balanced_memory. `user_set` is false when the budget is paradiff's default rather than
// the user's (accelerate then keeps 10% back when there is a single rank).
MaxMemory get_balanced_memory(const ModuleTree& tree, const MaxMemory& max_memory,
                              const SizeOptions& sizes, bool low_zero, bool user_set = true);

// get_max_layer_size over the root's direct tensors and children: the largest leaf module or
// no-split block, and every module of that size.
std::pair<int64_t, std::vector<std::string>> largest_layer(const ModuleTree& tree,
                                                           const SizeOptions& sizes);

struct InferredDeviceMap {
  DeviceMap device_map;  // cleaned when asked
  // accelerate's "no modules could be assigned to the following devices" report: the bytes the
  // first module that did not fit needed, plus the room reserved for the largest layer.
  std::vector<std::pair<DeviceKey, int64_t>> minimum_required;
  std::vector<std::string> warnings;  // accelerate's warnings (buffers of offloaded layers)
};

struct InferOptions {
  bool clean_result = true;
  bool offload_buffers = false;
};

InferredDeviceMap infer_auto_device_map(const ModuleTree& tree, const MaxMemory& max_memory,
                                        const SizeOptions& sizes, const InferOptions& options = {});

// Merges keys whose submodules all went to one device into the parent key, recursively; the
// merged key takes the place of the first key it replaces.
DeviceMap clean_device_map(DeviceMap device_map, const std::string& module_name = "");

// Checks an explicit map against the model: every key names a module or tensor (or is ""),
// every rank is below `world_size`, and every tensor of the state dict is covered (accelerate's
// message: "The device_map provided does not give any device for the following parameters:
// ...").
void check_device_map(const ModuleTree& tree, const DeviceMap& device_map, int world_size);

// An explicit map from JSON: {"module.path": rank | "disk", ...}, order kept.
DeviceMap device_map_from_json(const nlohmann::ordered_json& json);
DeviceMap read_device_map_file(const std::string& path);
nlohmann::ordered_json device_map_to_json(const DeviceMap& device_map);

// Bytes each device holds under a map: every tensor counted once, on the device of the longest
// key that covers it. Tensors no key covers are returned under `uncovered`.
struct DeviceBytes {
  std::vector<std::pair<DeviceKey, int64_t>> per_device;  // ranks ascending, then disk
  int64_t uncovered = 0;
};
DeviceBytes bytes_per_device(const ModuleTree& tree, const DeviceMap& device_map,
                             const SizeOptions& sizes);

// The activations one denoising step moves between ranks under a map: the hidden states cross
// at every boundary between consecutive entries (in execution order = definition order) that
// run on different ranks, and the output returns to the first rank. A "disk" entry runs on the
// main rank, as accelerate runs offloaded layers on its main device.
struct ActivationShape {
  int64_t tokens = 0;  // rows of the hidden states (text + image tokens for FLUX)
  int64_t width = 0;   // hidden size
  int64_t element_bytes = 4;
  int64_t output_width = 0;  // of the model's output; 0 = width
};
struct StageBoundary {
  std::string after;   // last entry on the sending rank ("" for the return of the output)
  std::string before;  // first entry on the receiving rank
  int from = 0;
  int to = 0;
  int64_t bytes = 0;
};
struct StepTraffic {
  std::vector<StageBoundary> boundaries;
  int64_t bytes_per_step = 0;
};
StepTraffic step_traffic(const ModuleTree& tree, const DeviceMap& device_map,
                         const ActivationShape& shape, int main_rank = 0);

// Everything `paradiff inspect` shows for one model.
struct ModelPlacement {
  std::string strategy;  // "auto", ..., or the map file's path
  MaxMemory max_memory;  // as used by the fill (after balancing)
  DeviceMap device_map;
  DeviceBytes bytes;
  int64_t largest_layer_bytes = 0;  // the room kept on the first rank
  std::vector<std::string> largest_layer_names;
  std::vector<std::pair<DeviceKey, int64_t>> minimum_required;
  std::vector<std::string> warnings;
};

// `device_map` is a strategy name or the path of an explicit map (a .json file). A budget that
// places nothing on any rank is refused, naming accelerate's minimum per device.
ModelPlacement place_model(const ModuleTree& tree, std::string_view device_map,
                           const MaxMemory& max_memory, int world_size, const SizeOptions& sizes,
                           bool user_set_max_memory = true);

nlohmann::ordered_json placement_to_json(const ModelPlacement& placement);

}  // namespace paradiff::parallel
