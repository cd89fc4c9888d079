// A model's module tree as data, and the byte size of every module in it, computed as
// accelerate's compute_module_sizes computes them. No weights are read: sizes are element counts
// times element sizes, from safetensors headers or from a structure description.
//
// Placement works on the tree torch would see: every module in definition order (a module
// without tensors, such as FLUX's pos_embed, is still a module a map can name), its class name
// (no-split blocks are recognised by class), its direct parameters, then its direct buffers.
// The parallel rung cannot see the models, so the model code (or a JSON description, the format
// tools/make_fixtures/make_placement_fixtures.py writes) supplies the structure; a checkpoint
// alone gives the tensors and the prefixes, with classes unknown and modules in natural order.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "paradiff/io/checkpoint.h"
#include "paradiff/io/safetensors.h"

namespace paradiff::parallel {

enum class TensorKind : uint8_t {
  Parameter,
  Buffer,               // persistent: in the state dict and the checkpoint
  NonPersistentBuffer,  // counted by accelerate, absent from the state dict and the checkpoint
};

struct ModuleTensor {
  std::string name;  // local name ("weight")
  int64_t numel = 0;
  SafetensorsDType dtype = SafetensorsDType::F32;  // as created (meta model) or as stored
  TensorKind kind = TensorKind::Parameter;
};

struct ModuleNode {
  std::string name;        // full dotted path; "" for the root
  std::string class_name;  // "" when unknown (a tree from a checkpoint alone)
  int parent = -1;
  std::vector<int> children;          // definition order
  std::vector<ModuleTensor> tensors;  // direct parameters, then direct buffers
};

// Torch's dtype names as the structure JSON writes them ("float32", "bfloat16", "int64", ...).
SafetensorsDType parse_torch_dtype(const std::string& name);

class ModuleTree {
 public:
  ModuleTree();  // a root module only

  // The structure JSON: {"class", "no_split", "tied", "classes", "modules": [[name, class index]
  // or [name, class index, [[local name, numel, dtype, kind p|b|n], ...]], ...]} with modules in
  // named_modules order (parents before children).
  static ModuleTree from_json(const nlohmann::json& structure);
  static ModuleTree from_json_file(const std::string& path);

  // Every tensor of a checkpoint (single file or sharded with an index), modules made from the
  // dotted prefixes and ordered naturally (numeric parts by value: "blocks.2" before
  // "blocks.10"); every tensor a persistent parameter with its stored dtype, unless
  // `as_created` is given: then floating-point tensors count as that dtype, as diffusers'
  // meta models (built in float32 before the map is computed) count them. `strip_prefix` is
  // removed from the names that start with it (transformers 5 loads CLIP's "text_model.*"
  // tensors into a model without that module).
  static ModuleTree from_checkpoint(const Checkpoint& checkpoint,
                                    std::optional<SafetensorsDType> as_created = std::nullopt,
                                    const std::string& strip_prefix = "");

  // Adds a module under its parent (created, class unknown, if missing) after its siblings, or
  // returns the existing one.
  int add_module(const std::string& name, const std::string& class_name = "");
  // Adds a tensor by full name ("blocks.0.attn.to_q.weight") to its module (created if missing).
  void add_tensor(const std::string& full_name, int64_t numel, SafetensorsDType dtype,
                  TensorKind kind = TensorKind::Parameter);
  void set_class(const std::string& module, const std::string& class_name);

  // Groups of parameter names that are one tensor (find_tied_parameters; each group sorted).
  // The first of a group in traversal order owns the bytes; the others count nothing.
  void set_tied(std::vector<std::vector<std::string>> groups);
  const std::vector<std::vector<std::string>>& tied() const { return tied_; }
  // The model's _no_split_modules (class names).
  void set_no_split(std::vector<std::string> classes) { no_split_ = std::move(classes); }
  const std::vector<std::string>& no_split() const { return no_split_; }
  const std::string& model_class() const { return nodes_[0].class_name; }

  size_t size() const { return nodes_.size(); }
  const ModuleNode& node(int index) const { return nodes_.at(static_cast<size_t>(index)); }
  const ModuleNode& root() const { return nodes_[0]; }
  std::optional<int> find(const std::string& name) const;
  bool is_no_split(int index) const;

  // Full names of every tensor in torch's state_dict order (pre-order; parameters then
  // persistent buffers per module; tied names each listed), as check_device_map sees them.
  std::vector<std::string> state_dict_names() const;
  // Whether a full tensor name is a duplicate of an earlier one in its tied group.
  bool is_tied_duplicate(const std::string& full_name) const;

 private:
  int ensure_module(const std::string& name);

  std::vector<ModuleNode> nodes_;
  std::unordered_map<std::string, int> index_;
  std::vector<std::vector<std::string>> tied_;
  std::unordered_map<std::string, bool> tied_duplicate_;
  std::vector<std::string> no_split_;
};

// compute_module_sizes: every module and every tensor (by full name) mapped to its bytes, ""
// being the whole model; keys in accelerate's insertion order (all parameters, then all
// buffers, each contributing its prefixes). Per tensor: the special dtype where one is given for
// its name; else its own size when no target dtype is given or it is an integer or bool
// tensor; else numel x min(target size, own size). A tied duplicate counts nothing.
// Deviation: accelerate counts a bool element as 1/8 byte; here it is 1 byte, as stored.
class ModuleSizes {
 public:
  int64_t operator[](const std::string& name) const;  // 0 for names never seen (defaultdict)
  bool contains(const std::string& name) const { return sizes_.count(name) != 0; }
  const std::vector<std::string>& keys() const { return keys_; }
  int64_t total() const { return (*this)[""]; }
  void add(const std::string& name, int64_t bytes);

 private:
  std::unordered_map<std::string, int64_t> sizes_;
  std::vector<std::string> keys_;
};

using SpecialDTypes = std::map<std::string, SafetensorsDType>;

// Bytes of one tensor under the rule above.
int64_t tensor_bytes(const ModuleTensor& tensor, const std::string& full_name,
                     std::optional<SafetensorsDType> dtype, const SpecialDTypes& special = {});

ModuleSizes compute_module_sizes(const ModuleTree& tree,
                                 std::optional<SafetensorsDType> dtype = std::nullopt,
                                 const SpecialDTypes& special = {}, bool buffers_only = false);

// Bytes of the buffers under one module (compute_module_total_buffer_size).
int64_t module_buffer_bytes(const ModuleTree& tree, int module,
                            std::optional<SafetensorsDType> dtype,
                            const SpecialDTypes& special = {});

}  // namespace paradiff::parallel
