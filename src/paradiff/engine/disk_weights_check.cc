#include "paradiff/engine/disk_weights_check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "paradiff/core/error.h"
#include "paradiff/io/checkpoint.h"

namespace paradiff::engine {

namespace {

namespace fs = std::filesystem;

// Why `path` cannot be read as a file, or "" when its first bytes can be.
std::string why_unreadable(const std::string& path) {
  std::error_code ec;
  if (fs::is_symlink(path, ec) && !fs::exists(path, ec))
    return str_cat("it is a symbolic link to ", fs::read_symlink(path, ec).string(),
                   ", which does not exist");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return std::strerror(errno);
  struct stat st {};
  std::string why;
  char header[8];
  if (::fstat(fd, &st) != 0)
    why = std::strerror(errno);
  else if (!S_ISREG(st.st_mode))
    why = S_ISDIR(st.st_mode) ? "it is a directory" : "it is not a regular file";
  else if (const ssize_t n = ::pread(fd, header, sizeof header, 0); n < 0)
    why = std::strerror(errno);
  else if (n < static_cast<ssize_t>(sizeof header))
    why = str_cat("it holds ", n, " bytes, fewer than a safetensors header's length field");
  ::close(fd);
  return why;
}

// Whether the map key `key` covers tensor `name` ("" covers everything).
bool covers(const std::string& key, const std::string& name) {
  return key.empty() || name == key ||
         (name.size() > key.size() && name.compare(0, key.size(), key) == 0 &&
          name[key.size()] == '.');
}

}  // namespace

void check_disk_weights_readable(const std::string& folder, const parallel::DeviceMap& map,
                                 const std::string& option, const std::string& when,
                                 const std::string& variant) {
  std::vector<std::string> disk_keys;
  for (const auto& [key, device] : map)
    if (device.is_disk()) disk_keys.push_back(key);
  if (disk_keys.empty()) return;
  std::string units;
  for (size_t i = 0; i < disk_keys.size() && i < 4; ++i)
    units += str_cat(i == 0 ? "" : ", ", disk_keys[i].empty() ? "the whole model" : disk_keys[i]);
  if (disk_keys.size() > 4) units += str_cat(" and ", disk_keys.size() - 4, " more");

  const std::string checkpoint =
      Checkpoint::find_in_folder(folder, "diffusion_pytorch_model", variant);
  std::set<std::string> files;
  if (checkpoint.size() > 5 && checkpoint.compare(checkpoint.size() - 5, 5, ".json") == 0) {
    // A sharded checkpoint: the shards that hold a disk unit's tensors.
    if (const std::string why = why_unreadable(checkpoint); !why.empty())
      throw Error(str_cat(option, " puts ", units, " on \"disk\", streamed from the checkpoint ",
                          checkpoint, ", which cannot be read: ", why));
    nlohmann::json index;
    try {
      std::ifstream in(checkpoint);
      index = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw Error(str_cat(checkpoint, ": not a valid index: ", e.what()));
    }
    PARADIFF_CHECK(
        index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
        checkpoint, ": not a valid index: no \"weight_map\" object");
    for (const auto& [name, shard] : index["weight_map"].items()) {
      PARADIFF_CHECK(shard.is_string(), checkpoint, ": the shard of tensor '", name,
                     "' is not a file name");
      for (const std::string& key : disk_keys)
        if (covers(key, name))
          files.insert((fs::path(checkpoint).parent_path() / shard.get<std::string>()).string());
    }
  } else {
    files.insert(checkpoint);
  }
  for (const std::string& file : files)
    if (const std::string why = why_unreadable(file); !why.empty())
      throw Error(str_cat(option, " puts ", units, " on \"disk\": their weights are streamed from ",
                          file, " ", when, ", but it cannot be read: ", why));
}

}  // namespace paradiff::engine
