#include "paradiff/parallel/placement/model_device_map.h"

#include <algorithm>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "paradiff/core/error.h"

namespace paradiff::parallel {

namespace {

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// accelerate's `name + "." in k + "."`: a substring test, not a prefix test.
bool inside(const std::string& name, const std::string& tensor) {
  return (tensor + ".").find(name + ".") != std::string::npos;
}

// One entry of accelerate's modules_to_treat: a module, or a tensor (a direct parameter or
// buffer of a module that was split).
struct Item {
  std::string name;
  int module = -1;  // -1 for a tensor
  bool is_module() const { return module >= 0; }
};

// named_parameters(recurse=False) + named_children() of a module.
std::vector<Item> split_items(const ModuleTree& tree, int module) {
  const ModuleNode& node = tree.node(module);
  std::vector<Item> out;
  for (const auto& t : node.tensors)
    if (t.kind == TensorKind::Parameter) out.push_back({join(node.name, t.name), -1});
  for (int child : node.children) out.push_back({tree.node(child).name, child});
  return out;
}

// get_max_layer_size.
std::pair<int64_t, std::vector<std::string>> max_layer_size(const ModuleTree& tree,
                                                            std::deque<Item> items,
                                                            const ModuleSizes& sizes) {
  int64_t max_size = 0;
  std::vector<std::string> names;
  while (!items.empty()) {
    Item item = items.front();
    items.pop_front();
    const bool leaf = !item.is_module() || tree.node(item.module).children.empty();
    if (leaf || tree.is_no_split(item.module)) {
      const int64_t size = sizes[item.name];
      if (size > max_size) {
        max_size = size;
        names = {item.name};
      } else if (size == max_size) {
        names.push_back(item.name);
      }
    } else {
      const auto& children = tree.node(item.module).children;
      for (auto it = children.rbegin(); it != children.rend(); ++it)
        items.push_front({tree.node(*it).name, *it});
    }
  }
  return {max_size, names};
}

std::deque<Item> modules_only(const std::deque<Item>& items) {
  std::deque<Item> out;
  for (const auto& item : items)
    if (item.is_module()) out.push_back(item);
  return out;
}

// The root's named_parameters(recurse=False) + named_children() + named_buffers(recurse=False).
std::deque<Item> root_items(const ModuleTree& tree) {
  const ModuleNode& root = tree.root();
  std::deque<Item> items;
  for (const auto& t : root.tensors)
    if (t.kind == TensorKind::Parameter) items.push_back({t.name, -1});
  for (int child : root.children) items.push_back({tree.node(child).name, child});
  for (const auto& t : root.tensors)
    if (t.kind != TensorKind::Parameter) items.push_back({t.name, -1});
  return items;
}

class OrderedDeviceMap {
 public:
  void set(const std::string& name, DeviceKey device) {
    for (auto& [k, v] : entries_)
      if (k == name) {
        v = device;
        return;
      }
    entries_.emplace_back(name, device);
  }
  DeviceMap take() { return std::move(entries_); }

 private:
  DeviceMap entries_;
};

std::string format_devices(const std::vector<std::pair<DeviceKey, int64_t>>& entries) {
  std::ostringstream out;
  for (const auto& [device, bytes] : entries)
    out << "\n  - " << device.str() << ": " << bytes << " bytes required";
  return out.str();
}

// Visits the map's entries in definition order (a key's tensors before its children).
void for_each_entry_in_order(const ModuleTree& tree, const DeviceMap& device_map,
                             const std::function<void(const std::string&, DeviceKey)>& visit) {
  std::map<std::string, DeviceKey> by_name(device_map.begin(), device_map.end());
  std::function<void(int)> walk = [&](int index) {
    const ModuleNode& node = tree.node(index);
    if (auto it = by_name.find(node.name); it != by_name.end()) {
      visit(node.name, it->second);
      return;
    }
    for (const auto& t : node.tensors) {
      const std::string full = join(node.name, t.name);
      if (auto it = by_name.find(full); it != by_name.end()) visit(full, it->second);
    }
    for (int child : node.children) walk(child);
  };
  walk(0);
}

}  // namespace

std::optional<ModelStrategy> parse_model_strategy(std::string_view name) {
  if (name == "auto") return ModelStrategy::Auto;
  if (name == "balanced") return ModelStrategy::Balanced;
  if (name == "balanced_low_0") return ModelStrategy::BalancedLow0;
  if (name == "sequential") return ModelStrategy::Sequential;
  return std::nullopt;
}

const char* model_strategy_name(ModelStrategy strategy) {
  switch (strategy) {
    case ModelStrategy::Auto:
      return "auto";
    case ModelStrategy::Balanced:
      return "balanced";
    case ModelStrategy::BalancedLow0:
      return "balanced_low_0";
    case ModelStrategy::Sequential:
      return "sequential";
  }
  return "?";
}

MaxMemory get_balanced_memory(const ModuleTree& tree, const MaxMemory& given,
                              const SizeOptions& options, bool low_zero, bool user_set) {
  MaxMemory max_memory = given;
  int num_devices = 0;
  for (const auto& [device, bytes] : max_memory.entries())
    if (device.is_rank() && bytes > 0) ++num_devices;
  if (num_devices == 0) return max_memory;

  if (num_devices == 1) {
    low_zero = false;
    if (!user_set) {
      // accelerate multiplies the first GPU's budget by 0.9 (a float); every later comparison
      // is against integer byte counts, so its floor is the same bound.
      for (const auto& [device, bytes] : max_memory.entries())
        if (device.is_rank()) {
          max_memory.set(device, static_cast<int64_t>(static_cast<double>(bytes) * 0.9));
          break;
        }
    }
  }

  const ModuleSizes sizes = compute_module_sizes(tree, options.dtype, options.special_dtypes);
  int64_t per_gpu = sizes.total() / (low_zero ? num_devices - 1 : num_devices);

  // The first module of each no-split class, in the order compute_module_sizes met them.
  int64_t buffer = 0;
  if (!tree.no_split().empty()) {
    std::map<std::string, int64_t> first_of_class;
    for (const auto& name : sizes.keys()) {
      if (name.empty()) continue;
      const auto module = tree.find(name);
      if (!module || !tree.is_no_split(*module)) continue;
      first_of_class.emplace(tree.node(*module).class_name, sizes[name]);
    }
    for (const auto& [cls, size] : first_of_class) buffer = std::max(buffer, size);
  }

  // get_module_leaves twice: the first leaves are the tensors, the second the final modules.
  auto leaves_of = [](const std::vector<std::string>& keys) {
    std::map<std::string, int> children;
    for (const auto& name : keys) {
      if (name.empty() || name.find('.') == std::string::npos) continue;
      ++children[name.substr(0, name.rfind('.'))];
    }
    std::vector<std::string> leaves;
    for (const auto& name : keys)
      if (!name.empty() && children.count(name) == 0) leaves.push_back(name);
    return leaves;
  };
  const std::vector<std::string> tensors = leaves_of(sizes.keys());
  const std::set<std::string> tensor_set(tensors.begin(), tensors.end());
  std::vector<std::string> modules;
  for (const auto& name : sizes.keys())
    if (!tensor_set.count(name)) modules.push_back(name);
  const std::vector<std::string> final_modules = leaves_of(modules);
  int64_t leaf_sum = 0;
  for (const auto& name : final_modules) leaf_sum += sizes[name];
  const auto mean_leaves =
      static_cast<int64_t>(static_cast<double>(leaf_sum) /
                           static_cast<double>(std::max<size_t>(final_modules.size(), 1)));
  buffer = std::max(buffer, mean_leaves) * 5 / 4;  // int(1.25 * x), exact for x >= 0
  per_gpu += buffer;

  std::vector<int> ranks;
  for (const auto& [device, bytes] : max_memory.entries())
    if (device.is_rank() && bytes > 0) ranks.push_back(device.rank_index());
  // The last rank keeps its whole budget, in case the buffer is not enough.
  for (size_t i = 0; i + 1 < ranks.size(); ++i) {
    const DeviceKey device = DeviceKey::rank(ranks[i]);
    const int64_t cap = low_zero && ranks[i] == 0 ? max_memory.at(DeviceKey::rank(0)) : per_gpu;
    max_memory.set(device, std::min(cap, max_memory.at(device)));
  }
  if (low_zero) {
    // accelerate sums ranks 1..n-1 by index (a KeyError where one is missing).
    int64_t others = 0;
    for (int r = 1; r < num_devices; ++r) others += max_memory.at(DeviceKey::rank(r));
    const int64_t min_zero = std::max<int64_t>(0, sizes.total() - others);
    max_memory.set(DeviceKey::rank(0), std::min(min_zero, max_memory.at(DeviceKey::rank(0))));
  }
  return max_memory;
}

std::pair<int64_t, std::vector<std::string>> largest_layer(const ModuleTree& tree,
                                                           const SizeOptions& options) {
  const ModuleSizes sizes = compute_module_sizes(tree, options.dtype, options.special_dtypes);
  return max_layer_size(tree, root_items(tree), sizes);
}

InferredDeviceMap infer_auto_device_map(const ModuleTree& tree, const MaxMemory& max_memory,
                                        const SizeOptions& options,
                                        const InferOptions& infer_options) {
  std::vector<DeviceKey> devices = max_memory.devices();
  if (!max_memory.contains(DeviceKey::disk())) devices.push_back(DeviceKey::disk());
  std::vector<DeviceKey> ranks;
  for (DeviceKey d : devices)
    if (d.is_rank()) ranks.push_back(d);
  // accelerate's main devices are the first GPU and "cpu"; there is no "cpu" here.
  const std::optional<DeviceKey> main_device =
      ranks.empty() ? std::nullopt : std::optional<DeviceKey>(ranks.front());

  const ModuleSizes sizes = compute_module_sizes(tree, options.dtype, options.special_dtypes);
  const auto& tied_parameters = tree.tied();
  std::deque<Item> queue = root_items(tree);

  OrderedDeviceMap device_map;
  size_t current = 0;
  std::map<DeviceKey, int64_t> used;
  for (DeviceKey d : devices) used[d] = 0;
  std::map<DeviceKey, int64_t> buffer_sizes;
  std::vector<std::pair<DeviceKey, int64_t>> minimum;

  auto [max_layer, max_layer_names] = max_layer_size(tree, queue, sizes);

  while (!queue.empty()) {
    Item item = queue.front();
    queue.pop_front();
    const std::string& name = item.name;
    std::erase_if(max_layer_names,
                  [&](const std::string& n) { return n == name || starts_with(n, name + "."); });
    if (max_layer_names.empty())
      std::tie(max_layer, max_layer_names) = max_layer_size(tree, modules_only(queue), sizes);
    const int64_t module_size = sizes[name];

    // Tied groups with a member inside this item and one outside; the outside members.
    std::vector<std::string> tied_params;
    for (const auto& group : tied_parameters) {
      const bool any = std::any_of(group.begin(), group.end(),
                                   [&](const std::string& k) { return inside(name, k); });
      const bool all = std::all_of(group.begin(), group.end(),
                                   [&](const std::string& k) { return inside(name, k); });
      if (!any || all) continue;
      for (const auto& p : group)
        if (!inside(name, p)) tied_params.push_back(p);
    }

    const DeviceKey device = devices[current];
    std::optional<int64_t> max_size;
    int64_t reserved = 0;
    if (!device.is_disk()) {
      max_size = max_memory.at(device);
      if (main_device && device == *main_device) {
        *max_size -= max_layer;
        reserved = max_layer;
      }
    }

    // get_module_size_with_ties: the queued modules holding the outside members.
    int64_t size_with_ties = module_size;
    std::vector<std::string> tied_module_names;
    std::vector<int> tied_modules;
    for (const auto& p : tied_params) {
      auto it = std::find_if(queue.begin(), queue.end(),
                             [&](const Item& q) { return starts_with(p, q.name + "."); });
      PARADIFF_CHECK(it != queue.end(), "tied parameter ", p, " (tied to a tensor of ", name,
                     ") is in no module still to be placed; accelerate fails here too");
      tied_module_names.push_back(it->name);
      tied_modules.push_back(it->module);
      size_with_ties += sizes[it->name] - sizes[p];
    }

    if (!max_size || used[device] + size_with_ties <= *max_size) {
      used[device] += size_with_ties;
      device_map.set(name, device);
      for (const auto& tied_name : tied_module_names) {
        auto it = std::find_if(queue.begin(), queue.end(),
                               [&](const Item& q) { return q.name == tied_name; });
        if (it != queue.end()) queue.erase(it);
        device_map.set(tied_name, device);
      }
      if (!infer_options.offload_buffers && item.is_module())
        buffer_sizes[device] +=
            module_buffer_bytes(tree, item.module, options.dtype, options.special_dtypes);
      continue;
    }

    // The item fits alone: try to split one of its tied modules instead.
    if (!tied_params.empty() && used[device] + module_size <= *max_size) {
      bool split = false;
      for (size_t i = 0; i < tied_modules.size(); ++i) {
        const int tied = tied_modules[i];
        if (tied < 0 || tree.node(tied).children.empty() || tree.is_no_split(tied)) continue;
        auto at = std::find_if(queue.begin(), queue.end(),
                               [&](const Item& q) { return q.name == tied_module_names[i]; });
        const std::vector<Item> children = split_items(tree, tied);
        std::deque<Item> next;
        next.push_back(item);
        next.insert(next.end(), queue.begin(), at);
        next.insert(next.end(), children.begin(), children.end());
        next.insert(next.end(), std::next(at), queue.end());
        queue = std::move(next);
        std::tie(max_layer, max_layer_names) = max_layer_size(tree, modules_only(queue), sizes);
        split = true;
        break;
      }
      if (split) continue;
    }

    // The item does not fit: split it, or move on to the next device.
    if (used[device] + module_size >= *max_size) {
      const bool splittable = item.is_module() && !tree.node(item.module).children.empty() &&
                              !tree.is_no_split(item.module);
      if (splittable) {
        const std::vector<Item> children = split_items(tree, item.module);
        queue.insert(queue.begin(), children.begin(), children.end());
        std::tie(max_layer, max_layer_names) = max_layer_size(tree, modules_only(queue), sizes);
        continue;
      }
    }

    if (used[device] == 0) minimum.emplace_back(device, size_with_ties + reserved);
    used[device] += reserved;
    ++current;
    queue.push_front(item);
  }

  InferredDeviceMap result;
  result.device_map = device_map.take();
  if (infer_options.clean_result)
    result.device_map = clean_device_map(std::move(result.device_map));
  result.minimum_required = std::move(minimum);

  // Buffers of layers on disk stay resident on a rank unless offload_buffers; warn as
  // accelerate does when no rank has room for them.
  const int64_t offloaded_buffers = buffer_sizes[DeviceKey::disk()];
  if (offloaded_buffers > 0 && !infer_options.offload_buffers && !ranks.empty()) {
    bool fits = false;
    for (const auto& [device, budget] : max_memory.entries())
      if (device.is_rank() && budget >= offloaded_buffers + used[device]) fits = true;
    if (!fits)
      result.warnings.push_back(
          str_cat("Current model requires ", offloaded_buffers,
                  " bytes of buffer for offloaded layers, which seems does not fit any GPU's "
                  "remaining memory. If you are experiencing a OOM later, please consider using "
                  "offload_buffers=True."));
  }
  return result;
}

DeviceMap clean_device_map(DeviceMap device_map, const std::string& module_name) {
  const std::string prefix = module_name.empty() ? "" : module_name + ".";
  std::vector<size_t> matching;
  for (size_t i = 0; i < device_map.size(); ++i)
    if (starts_with(device_map[i].first, prefix)) matching.push_back(i);
  bool one_device = matching.size() > 1;
  for (size_t i : matching)
    if (!(device_map[i].second == device_map[matching.front()].second)) one_device = false;
  if (one_device) {
    const DeviceKey device = device_map[matching.front()].second;
    DeviceMap merged;
    for (size_t i = 0; i < device_map.size(); ++i) {
      if (i == matching.front()) merged.emplace_back(module_name, device);
      if (!starts_with(device_map[i].first, prefix)) merged.push_back(device_map[i]);
    }
    device_map = std::move(merged);
  }
  const size_t depth =
      module_name.empty()
          ? 1
          : static_cast<size_t>(std::count(module_name.begin(), module_name.end(), '.')) + 2;
  std::vector<std::string> children;
  for (const auto& [key, device] : device_map) {
    if (!starts_with(key, prefix) || key.size() <= module_name.size()) continue;
    size_t end = 0;
    for (size_t part = 0; part < depth && end != std::string::npos; ++part)
      end = key.find('.', part == 0 ? 0 : end + 1);
    std::string child = end == std::string::npos ? key : key.substr(0, end);
    if (std::find(children.begin(), children.end(), child) == children.end())
      children.push_back(child);
  }
  for (const auto& child : children) device_map = clean_device_map(std::move(device_map), child);
  return device_map;
}

void check_device_map(const ModuleTree& tree, const DeviceMap& device_map, int world_size) {
  const std::vector<std::string> tensors = tree.state_dict_names();
  const std::set<std::string> tensor_set(tensors.begin(), tensors.end());
  std::vector<std::string> unknown;
  std::set<std::string> seen;
  for (const auto& [key, device] : device_map) {
    PARADIFF_CHECK(seen.insert(key).second, "device_map gives '", key, "' twice");
    if (!key.empty() && !tree.find(key) && !tensor_set.count(key)) unknown.push_back(key);
    PARADIFF_CHECK(device.is_disk() || device.rank_index() < world_size, "device_map puts '", key,
                   "' on rank ", device.str(), ", but the world has ", world_size, " rank(s) (0..",
                   world_size - 1, ")");
  }
  if (!unknown.empty()) {
    std::ostringstream list;
    for (size_t i = 0; i < unknown.size(); ++i) list << (i ? ", " : "") << "'" << unknown[i] << "'";
    throw Error(
        str_cat("The following device_map keys do not match any submodules in the "
                "model (",
                tree.model_class().empty() ? "model" : tree.model_class(), "): ", list.str()));
  }
  std::vector<std::string> uncovered = tensors;
  for (const auto& [key, device] : device_map) {
    if (key.empty()) {
      uncovered.clear();
      break;
    }
    std::erase_if(uncovered,
                  [&](const std::string& t) { return t == key || starts_with(t, key + "."); });
  }
  if (!uncovered.empty()) {
    std::ostringstream list;
    for (size_t i = 0; i < uncovered.size(); ++i) list << (i ? ", " : "") << uncovered[i];
    throw Error(
        str_cat("The device_map provided does not give any device for the following parameters: ",
                list.str()));
  }
}

DeviceMap device_map_from_json(const nlohmann::ordered_json& json) {
  PARADIFF_CHECK(json.is_object(), "a device map must be a JSON object {module: rank or \"disk\"}",
                 ", got ", json.dump());
  DeviceMap out;
  for (const auto& [key, value] : json.items()) {
    if (value.is_number_integer()) {
      PARADIFF_CHECK(value.get<int64_t>() >= 0 && value.get<int64_t>() < (1 << 30), "device_map['",
                     key, "'] = ", value.dump(), ": a rank must be >= 0");
      out.emplace_back(key, DeviceKey::rank(value.get<int>()));
    } else if (value.is_string()) {
      try {
        out.emplace_back(key, DeviceKey::parse(value.get<std::string>()));
      } catch (const Error& e) {
        throw Error(str_cat("device_map['", key, "']: ", e.what()));
      }
    } else {
      throw Error(str_cat("device_map['", key, "'] = ", value.dump(),
                          ": a device is a rank (an integer) or \"disk\""));
    }
  }
  return out;
}

DeviceMap read_device_map_file(const std::string& path) {
  std::ifstream in(path);
  PARADIFF_CHECK(in.good(), path, ": cannot open the device map");
  try {
    return device_map_from_json(nlohmann::ordered_json::parse(in));
  } catch (const nlohmann::json::exception& e) {
    throw Error(str_cat(path, ": ", e.what()));
  } catch (const Error&) {
    rethrow_with_context(path);
  }
}

nlohmann::ordered_json device_map_to_json(const DeviceMap& device_map) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& [key, device] : device_map) {
    if (device.is_disk())
      out[key] = "disk";
    else
      out[key] = device.rank_index();
  }
  return out;
}

DeviceBytes bytes_per_device(const ModuleTree& tree, const DeviceMap& device_map,
                             const SizeOptions& options) {
  std::map<std::string, DeviceKey> by_name(device_map.begin(), device_map.end());
  std::map<DeviceKey, int64_t> totals;
  for (const auto& [key, device] : device_map) totals[device] += 0;  // a device with 0 bytes
  DeviceBytes out;
  std::function<void(int, std::optional<DeviceKey>)> walk =
      [&](int index, std::optional<DeviceKey> inherited) {
        const ModuleNode& node = tree.node(index);
        if (auto it = by_name.find(node.name); it != by_name.end()) inherited = it->second;
        for (const auto& t : node.tensors) {
          const std::string full = join(node.name, t.name);
          if (tree.is_tied_duplicate(full)) continue;
          std::optional<DeviceKey> device = inherited;
          if (auto it = by_name.find(full); it != by_name.end()) device = it->second;
          const int64_t bytes = tensor_bytes(t, full, options.dtype, options.special_dtypes);
          if (device)
            totals[*device] += bytes;
          else
            out.uncovered += bytes;
        }
        for (int child : node.children) walk(child, inherited);
      };
  walk(0, std::nullopt);
  for (const auto& [device, bytes] : totals) out.per_device.emplace_back(device, bytes);
  return out;
}

StepTraffic step_traffic(const ModuleTree& tree, const DeviceMap& device_map,
                         const ActivationShape& shape, int main_rank) {
  PARADIFF_CHECK(shape.tokens >= 0 && shape.width >= 0 && shape.element_bytes > 0,
                 "activation shape must be non-negative, got tokens ", shape.tokens, ", width ",
                 shape.width, ", element bytes ", shape.element_bytes);
  StepTraffic out;
  const int64_t hidden = shape.tokens * shape.width * shape.element_bytes;
  const int64_t output = shape.tokens *
                         (shape.output_width > 0 ? shape.output_width : shape.width) *
                         shape.element_bytes;
  std::optional<int> previous_rank;
  std::string previous_entry;
  for_each_entry_in_order(tree, device_map, [&](const std::string& name, DeviceKey device) {
    const int rank = device.is_disk() ? main_rank : device.rank_index();
    if (previous_rank && *previous_rank != rank)
      out.boundaries.push_back({previous_entry, name, *previous_rank, rank, hidden});
    previous_rank = rank;
    previous_entry = name;
  });
  if (previous_rank && *previous_rank != main_rank)
    out.boundaries.push_back({previous_entry, "", *previous_rank, main_rank, output});
  for (const auto& b : out.boundaries) out.bytes_per_step += b.bytes;
  return out;
}

ModelPlacement place_model(const ModuleTree& tree, std::string_view device_map,
                           const MaxMemory& max_memory, int world_size, const SizeOptions& sizes,
                           bool user_set_max_memory) {
  ModelPlacement out;
  out.strategy = std::string(device_map);
  std::tie(out.largest_layer_bytes, out.largest_layer_names) = largest_layer(tree, sizes);
  for (const auto& [device, bytes] : max_memory.entries())
    PARADIFF_CHECK(device.is_disk() || device.rank_index() < world_size, "max_memory names rank ",
                   device.str(), ", but the world has ", world_size, " rank(s)");
  if (const auto strategy = parse_model_strategy(device_map)) {
    out.max_memory =
        *strategy == ModelStrategy::Sequential
            ? max_memory
            : get_balanced_memory(tree, max_memory, sizes, *strategy == ModelStrategy::BalancedLow0,
                                  user_set_max_memory);
    InferredDeviceMap inferred = infer_auto_device_map(tree, out.max_memory, sizes);
    out.device_map = std::move(inferred.device_map);
    out.minimum_required = std::move(inferred.minimum_required);
    out.warnings = std::move(inferred.warnings);
    // Modules without tensors may still land on a rank; what counts is where the bytes go.
    const DeviceBytes bytes = bytes_per_device(tree, out.device_map, sizes);
    int64_t on_ranks = 0, total = bytes.uncovered;
    for (const auto& [device, b] : bytes.per_device) {
      total += b;
      if (device.is_rank()) on_ranks += b;
    }
    if (on_ranks == 0 && total > 0)
      throw Error(str_cat(
          "device_map=\"", device_map, "\" with max_memory ", out.max_memory.str(),
          " places no module on any rank (everything would be streamed from disk). accelerate's "
          "minimum per device for this allocation:",
          format_devices(out.minimum_required), "\nGive at least these budgets, or more ranks."));
  } else {
    PARADIFF_CHECK(device_map.size() > 5 && device_map.substr(device_map.size() - 5) == ".json",
                   "device_map '", device_map,
                   "' is neither a strategy (auto, balanced, balanced_low_0, sequential) nor a "
                   ".json file");
    out.max_memory = max_memory;
    out.device_map = read_device_map_file(std::string(device_map));
    check_device_map(tree, out.device_map, world_size);
  }
  out.bytes = bytes_per_device(tree, out.device_map, sizes);
  return out;
}

nlohmann::ordered_json placement_to_json(const ModelPlacement& placement) {
  nlohmann::ordered_json out;
  out["device_map"] = device_map_to_json(placement.device_map);
  nlohmann::ordered_json per_device = nlohmann::ordered_json::object();
  for (const auto& [device, bytes] : placement.bytes.per_device) per_device[device.str()] = bytes;
  out["bytes_per_device"] = per_device;
  nlohmann::ordered_json budgets = nlohmann::ordered_json::object();
  for (const auto& [device, bytes] : placement.max_memory.entries()) budgets[device.str()] = bytes;
  out["max_memory"] = budgets;
  out["largest_layer"] = {{"bytes", placement.largest_layer_bytes},
                          {"modules", placement.largest_layer_names}};
  return out;
}

}  // namespace paradiff::parallel
