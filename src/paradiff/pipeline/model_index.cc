#include "paradiff/pipeline/model_index.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "paradiff/core/error.h"
#include "paradiff/io/json_config.h"

namespace paradiff::pipeline {

namespace fs = std::filesystem;

namespace {
std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}
}  // namespace

ModelIndex ModelIndex::load(const std::string& folder) {
  PARADIFF_CHECK(fs::is_directory(folder), "model folder '", folder,
                 "' does not exist or is not a directory");
  const fs::path path = fs::path(folder) / "model_index.json";
  PARADIFF_CHECK(fs::exists(path), "model folder '", folder,
                 "' has no model_index.json: not a diffusers pipeline folder");
  const JsonConfig config = JsonConfig::load(path.string());
  const auto& root = config.root();
  PARADIFF_CHECK(root.is_object(), path.string(), ": expected a JSON object, got ",
                 json_excerpt(root));
  ModelIndex index;
  index.folder = folder;
  const auto class_name = config.optional_string("_class_name");
  PARADIFF_CHECK(class_name.has_value() && !class_name->empty(), path.string(),
                 ": key '_class_name' (the pipeline class) is required");
  index.class_name = *class_name;
  for (const auto& [key, value] : root.items()) {
    if (key.empty() || key[0] == '_') continue;  // _class_name, _diffusers_version, _name_or_path
    // A component is [library, class]; anything else (a pipeline option such as
    // "requires_safety_checker": false) is not a component.
    if (!value.is_array()) continue;
    PARADIFF_CHECK(value.size() == 2, path.string(), ": component '", key,
                   "' must be [library, class], got ", json_excerpt(value));
    Component c;
    if (value[0].is_null() && value[1].is_null()) {
      index.components[key] = c;
      continue;
    }
    PARADIFF_CHECK(value[0].is_string() && value[1].is_string(), path.string(), ": component '",
                   key, "' must be [library, class] strings, got ", json_excerpt(value));
    c.library = value[0].get<std::string>();
    c.class_name = value[1].get<std::string>();
    index.components[key] = c;
  }
  return index;
}

void ModelIndex::require(const std::map<std::string, std::vector<std::string>>& required) const {
  const std::string file = (fs::path(folder) / "model_index.json").string();
  for (const auto& [name, classes] : required) {
    const auto it = components.find(name);
    PARADIFF_CHECK(it != components.end() && !it->second.class_name.empty(), file, ": ", class_name,
                   " needs the component '", name, "' (", join(classes), "), which is not listed");
    bool supported = false;
    for (const auto& c : classes) supported = supported || c == it->second.class_name;
    PARADIFF_CHECK(supported, file, ": component '", name, "' is a ", it->second.class_name,
                   ", which paradiff's ", class_name,
                   " does not support (supported: ", join(classes), ")");
    PARADIFF_CHECK(fs::is_directory(fs::path(folder) / name), "model folder '", folder, "' has no ",
                   name, "/ component (model_index.json lists it as ", it->second.class_name, ")");
  }
}

}  // namespace paradiff::pipeline
