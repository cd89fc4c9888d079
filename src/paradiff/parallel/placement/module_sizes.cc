#include "paradiff/parallel/placement/module_sizes.h"

#include <algorithm>
#include <fstream>
#include <functional>

#include "paradiff/core/error.h"

namespace paradiff::parallel {

namespace {

bool is_integer_or_bool(SafetensorsDType dtype) {
  switch (dtype) {
    case SafetensorsDType::BOOL:
    case SafetensorsDType::U8:
    case SafetensorsDType::I8:
    case SafetensorsDType::I16:
    case SafetensorsDType::U16:
    case SafetensorsDType::I32:
    case SafetensorsDType::U32:
    case SafetensorsDType::I64:
    case SafetensorsDType::U64:
      return true;
    default:
      return false;
  }
}

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

std::string parent_of(const std::string& name) {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos ? std::string() : name.substr(0, dot);
}

// "blocks.10.x" after "blocks.2.x": numeric parts compare by value, and before names.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const size_t ei = std::min(a.find('.', i), a.size());
    const size_t ej = std::min(b.find('.', j), b.size());
    const std::string pa = a.substr(i, ei - i), pb = b.substr(j, ej - j);
    const bool na = !pa.empty() && std::all_of(pa.begin(), pa.end(), ::isdigit);
    const bool nb = !pb.empty() && std::all_of(pb.begin(), pb.end(), ::isdigit);
    if (na && nb && pa.size() != pb.size()) return pa.size() < pb.size();
    if (na != nb) return na;
    if (pa != pb) return pa < pb;
    i = ei + 1;
    j = ej + 1;
  }
  return a.size() < b.size();
}

template <typename F>
void preorder(const std::vector<ModuleNode>& nodes, int index, F&& visit) {
  visit(index);
  for (int child : nodes[static_cast<size_t>(index)].children) preorder(nodes, child, visit);
}

}  // namespace

SafetensorsDType parse_torch_dtype(const std::string& name) {
  static const std::map<std::string, SafetensorsDType> kNames = {
      {"float32", SafetensorsDType::F32},
      {"float", SafetensorsDType::F32},
      {"bfloat16", SafetensorsDType::BF16},
      {"float16", SafetensorsDType::F16},
      {"half", SafetensorsDType::F16},
      {"float64", SafetensorsDType::F64},
      {"int64", SafetensorsDType::I64},
      {"int32", SafetensorsDType::I32},
      {"int16", SafetensorsDType::I16},
      {"int8", SafetensorsDType::I8},
      {"uint8", SafetensorsDType::U8},
      {"bool", SafetensorsDType::BOOL},
      {"float8_e4m3fn", SafetensorsDType::F8_E4M3},
      {"float8_e5m2", SafetensorsDType::F8_E5M2},
  };
  auto it = kNames.find(name);
  PARADIFF_CHECK(it != kNames.end(), "unknown torch dtype '", name, "'");
  return it->second;
}

ModuleTree::ModuleTree() {
  nodes_.push_back(ModuleNode{});
  index_[""] = 0;
}

int ModuleTree::ensure_module(const std::string& name) {
  auto it = index_.find(name);
  if (it != index_.end()) return it->second;
  const int parent = ensure_module(parent_of(name));
  const int index = static_cast<int>(nodes_.size());
  ModuleNode node;
  node.name = name;
  node.parent = parent;
  nodes_.push_back(std::move(node));
  nodes_[static_cast<size_t>(parent)].children.push_back(index);
  index_[name] = index;
  return index;
}

int ModuleTree::add_module(const std::string& name, const std::string& class_name) {
  const int index = ensure_module(name);
  if (!class_name.empty()) nodes_[static_cast<size_t>(index)].class_name = class_name;
  return index;
}

void ModuleTree::add_tensor(const std::string& full_name, int64_t numel, SafetensorsDType dtype,
                            TensorKind kind) {
  PARADIFF_CHECK(!full_name.empty(), "a tensor needs a name");
  PARADIFF_CHECK(numel >= 0, "tensor ", full_name, " has a negative element count ", numel);
  const int module = ensure_module(parent_of(full_name));
  const size_t dot = full_name.rfind('.');
  const std::string local = dot == std::string::npos ? full_name : full_name.substr(dot + 1);
  auto& tensors = nodes_[static_cast<size_t>(module)].tensors;
  for (const auto& t : tensors)
    PARADIFF_CHECK(t.name != local, "tensor ", full_name, " is given twice");
  // Parameters come before buffers (named_parameters, then named_buffers).
  auto at = tensors.end();
  if (kind == TensorKind::Parameter)
    at = std::find_if(tensors.begin(), tensors.end(),
                      [](const ModuleTensor& t) { return t.kind != TensorKind::Parameter; });
  tensors.insert(at, ModuleTensor{local, numel, dtype, kind});
}

void ModuleTree::set_class(const std::string& module, const std::string& class_name) {
  auto found = find(module);
  PARADIFF_CHECK(found.has_value(), "no module '", module, "' to give class ", class_name);
  nodes_[static_cast<size_t>(*found)].class_name = class_name;
}

void ModuleTree::set_tied(std::vector<std::vector<std::string>> groups) {
  tied_ = std::move(groups);
  tied_duplicate_.clear();
  std::unordered_map<std::string, size_t> group_of;
  for (size_t g = 0; g < tied_.size(); ++g)
    for (const auto& name : tied_[g]) group_of[name] = g;
  std::vector<bool> owned(tied_.size(), false);
  preorder(nodes_, 0, [&](int index) {
    const ModuleNode& node = nodes_[static_cast<size_t>(index)];
    for (const auto& t : node.tensors) {
      const std::string full = join(node.name, t.name);
      auto it = group_of.find(full);
      if (it == group_of.end()) continue;
      tied_duplicate_[full] = owned[it->second];
      owned[it->second] = true;
    }
  });
  for (size_t g = 0; g < tied_.size(); ++g)
    PARADIFF_CHECK(owned[g], "tied group [", tied_[g].empty() ? "" : tied_[g][0],
                   ", ...] names no tensor of the model");
}

bool ModuleTree::is_tied_duplicate(const std::string& full_name) const {
  auto it = tied_duplicate_.find(full_name);
  return it != tied_duplicate_.end() && it->second;
}

std::optional<int> ModuleTree::find(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

bool ModuleTree::is_no_split(int index) const {
  const std::string& cls = node(index).class_name;
  return !cls.empty() && std::find(no_split_.begin(), no_split_.end(), cls) != no_split_.end();
}

std::vector<std::string> ModuleTree::state_dict_names() const {
  std::vector<std::string> names;
  preorder(nodes_, 0, [&](int index) {
    const ModuleNode& node = nodes_[static_cast<size_t>(index)];
    for (const auto& t : node.tensors)
      if (t.kind != TensorKind::NonPersistentBuffer) names.push_back(join(node.name, t.name));
  });
  return names;
}

ModuleTree ModuleTree::from_json(const nlohmann::json& s) {
  try {
    ModuleTree tree;
    const auto& classes = s.at("classes");
    for (const auto& entry : s.at("modules")) {
      const std::string name = entry.at(0).get<std::string>();
      const std::string cls = classes.at(entry.at(1).get<size_t>()).get<std::string>();
      PARADIFF_CHECK(name.empty() || tree.find(parent_of(name)).has_value(), "module '", name,
                     "' comes before its parent");
      tree.add_module(name, cls);
      if (entry.size() < 3) continue;
      for (const auto& t : entry.at(2)) {
        const std::string kind = t.at(3).get<std::string>();
        PARADIFF_CHECK(kind == "p" || kind == "b" || kind == "n", "tensor kind '", kind,
                       "' is not p, b or n");
        tree.add_tensor(join(name, t.at(0).get<std::string>()), t.at(1).get<int64_t>(),
                        parse_torch_dtype(t.at(2).get<std::string>()),
                        kind == "p"   ? TensorKind::Parameter
                        : kind == "b" ? TensorKind::Buffer
                                      : TensorKind::NonPersistentBuffer);
      }
    }
    tree.set_no_split(s.value("no_split", std::vector<std::string>{}));
    tree.set_tied(s.value("tied", std::vector<std::vector<std::string>>{}));
    return tree;
  } catch (const nlohmann::json::exception& e) {
    throw Error(str_cat("module structure: ", e.what()));
  }
}

ModuleTree ModuleTree::from_json_file(const std::string& path) {
  std::ifstream in(path);
  PARADIFF_CHECK(in.good(), path, ": cannot open");
  try {
    return from_json(nlohmann::json::parse(in));
  } catch (const nlohmann::json::exception& e) {
    throw Error(str_cat(path, ": ", e.what()));
  } catch (const Error&) {
    rethrow_with_context(path);
  }
}

ModuleTree ModuleTree::from_checkpoint(const Checkpoint& checkpoint,
                                       std::optional<SafetensorsDType> as_created,
                                       const std::string& strip_prefix) {
  std::vector<std::pair<std::string, std::string>> names;  // (model name, file name)
  for (const auto& name : checkpoint.names()) {
    const bool strip = !strip_prefix.empty() && name.rfind(strip_prefix, 0) == 0;
    names.emplace_back(strip ? name.substr(strip_prefix.size()) : name, name);
  }
  std::sort(names.begin(), names.end(),
            [](const auto& a, const auto& b) { return natural_less(a.first, b.first); });
  ModuleTree tree;
  for (const auto& [name, file_name] : names) {
    const SafetensorsTensorInfo& info = checkpoint.info(file_name);
    SafetensorsDType dtype = info.dtype;
    if (as_created && !is_integer_or_bool(dtype)) dtype = *as_created;
    tree.add_tensor(name, info.numel, dtype);
  }
  return tree;
}

int64_t ModuleSizes::operator[](const std::string& name) const {
  auto it = sizes_.find(name);
  return it == sizes_.end() ? 0 : it->second;
}

void ModuleSizes::add(const std::string& name, int64_t bytes) {
  auto [it, inserted] = sizes_.emplace(name, 0);
  if (inserted) keys_.push_back(name);
  it->second += bytes;
}

int64_t tensor_bytes(const ModuleTensor& tensor, const std::string& full_name,
                     std::optional<SafetensorsDType> dtype, const SpecialDTypes& special) {
  const auto own = static_cast<int64_t>(safetensors_dtype_size(tensor.dtype));
  if (auto it = special.find(full_name); it != special.end())
    return tensor.numel * static_cast<int64_t>(safetensors_dtype_size(it->second));
  if (!dtype || is_integer_or_bool(tensor.dtype)) return tensor.numel * own;
  return tensor.numel * std::min(own, static_cast<int64_t>(safetensors_dtype_size(*dtype)));
}

ModuleSizes compute_module_sizes(const ModuleTree& tree, std::optional<SafetensorsDType> dtype,
                                 const SpecialDTypes& special, bool buffers_only) {
  ModuleSizes sizes;
  auto add_kind = [&](bool parameters) {
    std::function<void(int)> walk = [&](int index) {
      const ModuleNode& node = tree.node(index);
      for (const auto& t : node.tensors) {
        if ((t.kind == TensorKind::Parameter) != parameters) continue;
        const std::string full = join(node.name, t.name);
        if (tree.is_tied_duplicate(full)) continue;
        const int64_t bytes = tensor_bytes(t, full, dtype, special);
        sizes.add("", bytes);
        for (size_t dot = full.find('.'); dot != std::string::npos; dot = full.find('.', dot + 1))
          sizes.add(full.substr(0, dot), bytes);
        sizes.add(full, bytes);
      }
      for (int child : node.children) walk(child);
    };
    walk(0);
  };
  if (!buffers_only) add_kind(true);
  add_kind(false);
  return sizes;
}

int64_t module_buffer_bytes(const ModuleTree& tree, int module,
                            std::optional<SafetensorsDType> dtype, const SpecialDTypes& special) {
  int64_t total = 0;
  std::function<void(int)> walk = [&](int index) {
    const ModuleNode& node = tree.node(index);
    for (const auto& t : node.tensors) {
      if (t.kind == TensorKind::Parameter) continue;
      // compute_module_total_buffer_size runs on the submodule, so a special dtype applies by
      // the name relative to it (accelerate does the same).
      const std::string full = join(node.name, t.name);
      const std::string& base = tree.node(module).name;
      const std::string local_full = base.empty() ? full : full.substr(base.size() + 1);
      total += tensor_bytes(t, local_full, dtype, special);
    }
    for (int child : node.children) walk(child);
  };
  walk(module);
  return total;
}

}  // namespace paradiff::parallel
