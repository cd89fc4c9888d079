// model_index.json, the table of contents of a diffusers pipeline folder: the pipeline's class
// (`_class_name`) and, for each component, the library and class that saved it
// (`"vae": ["diffusers", "AutoencoderKL"]`; `[null, null]` for an absent optional component).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace paradiff::pipeline {

struct ModelIndex {
  struct Component {
    std::string library;     // "diffusers", "transformers"; empty when absent
    std::string class_name;  // empty when absent ([null, null])
  };

  std::string folder;
  std::string class_name;
  std::map<std::string, Component> components;

  // Reads `folder`/model_index.json; errors name the folder, the file and the key.
  static ModelIndex load(const std::string& folder);

  // Checks that every component in `required` is present, its class is one of those listed, and
  // its subfolder exists; throws naming the component, the class found and the classes
  // supported.
  void require(const std::map<std::string, std::vector<std::string>>& required) const;
};

}  // namespace paradiff::pipeline
