#include "paradiff/models/weight_source.h"

#include <filesystem>

namespace paradiff::models {

std::string model_config_path(const std::string& folder, const std::string& what) {
  namespace fs = std::filesystem;
  PARADIFF_CHECK(fs::is_directory(folder), what, " '", folder,
                 "' does not exist or is not a directory");
  const fs::path config = fs::path(folder) / "config.json";
  PARADIFF_CHECK(fs::exists(config), what, " '", folder, "' has no config.json");
  return config.string();
}

}  // namespace paradiff::models
