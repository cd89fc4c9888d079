#include "paradiff/io/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "paradiff/io/json_config.h"

namespace paradiff {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// Not "quoted": ADL would pick std::quoted for a non-const std::string.
std::string quote_name(const std::string& text) {
  return json_excerpt(json(text));
}

// Shard names come from the index, which may be hostile: they must stay inside its folder.
void check_shard_name(const std::string& index, const std::string& tensor,
                      const std::string& shard) {
  const fs::path p(shard);
  bool escapes = shard.empty() || p.is_absolute();
  for (const fs::path& part : p) escapes = escapes || part == "..";
  PARADIFF_CHECK(!escapes, index, ": tensor ", quote_name(tensor), " names shard ",
                 quote_name(shard), ", which is not a file name inside the index's folder");
}

// A variant is one dot-free part of a file name ("fp16", "bf16", "ema").
void check_variant_name(const std::string& variant) {
  const bool ok = variant.find_first_of("./\\") == std::string::npos &&
                  std::all_of(variant.begin(), variant.end(),
                              [](char c) { return static_cast<unsigned char>(c) > ' '; });
  PARADIFF_CHECK(ok, "variant ", quote_name(variant),
                 " is not a file-name part (expected a name such as fp16 or bf16, without dots, "
                 "slashes or spaces)");
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint ck;
  ck.path_ = path;
  if (!path.ends_with(".json")) {
    ck.shards_.push_back(SafetensorsFile::open(path));
    for (const std::string& name : ck.shards_[0].names()) ck.where_.emplace(name, 0);
    ck.metadata_ = ck.shards_[0].metadata();
    return ck;
  }

  ck.sharded_ = true;
  const JsonConfig index = JsonConfig::load(path);  // rejects bad JSON and duplicate keys
  const json& root = index.root();
  if (const auto it = root.find("metadata"); it != root.end() && !it->is_null()) {
    PARADIFF_CHECK(it->is_object(), path, ": \"metadata\" must be an object, got ",
                   json_excerpt(*it));
    for (const auto& [key, value] : it->items())
      ck.metadata_[key] = value.is_string() ? value.get<std::string>() : value.dump();
  }
  const auto map_it = root.find("weight_map");
  PARADIFF_CHECK(map_it != root.end(), path, ": no \"weight_map\" (expected a sharded ",
                 "checkpoint index: {\"weight_map\": {\"tensor name\": \"shard file\"}})");
  PARADIFF_CHECK(map_it->is_object(), path, ": \"weight_map\" must be an object, got ",
                 json_excerpt(*map_it));
  PARADIFF_CHECK(!map_it->empty(), path, ": \"weight_map\" lists no tensors");

  const fs::path folder = fs::path(path).parent_path();
  std::map<std::string, size_t> shard_ids;    // shard file name -> index into shards_
  std::map<std::string, std::string> listed;  // tensor -> shard file name
  for (const auto& [tensor, shard_value] : map_it->items()) {
    PARADIFF_CHECK(shard_value.is_string(), path, ": weight_map entry for ", quote_name(tensor),
                   " must be a shard file name, got ", json_excerpt(shard_value));
    const auto& shard = shard_value.get_ref<const std::string&>();
    check_shard_name(path, tensor, shard);
    auto [id, inserted] = shard_ids.emplace(shard, ck.shards_.size());
    if (inserted) {
      try {
        ck.shards_.push_back(SafetensorsFile::open((folder / shard).string()));
      } catch (const Error&) {
        rethrow_with_context(str_cat(path, ": shard ", quote_name(shard)));
      }
    }
    PARADIFF_CHECK(ck.shards_[id->second].contains(tensor), path, ": tensor ", quote_name(tensor),
                   " is listed in shard ", quote_name(shard), ", which does not hold it");
    listed.emplace(tensor, shard);
    ck.where_.emplace(tensor, id->second);
  }
  // The index must describe the shards exactly: a tensor in two shards is ambiguous, and one the
  // index does not list would be loaded by diffusers (which reads whole shards) but not by us.
  for (const auto& [shard, id] : shard_ids) {
    for (const std::string& tensor : ck.shards_[id].names()) {
      const auto it = listed.find(tensor);
      PARADIFF_CHECK(it != listed.end(), path, ": shard ", quote_name(shard), " holds tensor ",
                     quote_name(tensor), ", which the index does not list");
      PARADIFF_CHECK(it->second == shard, path, ": tensor ", quote_name(tensor),
                     " appears in two shards: ", quote_name(it->second),
                     " (as the index says) and ", quote_name(shard));
    }
  }
  return ck;
}

Checkpoint Checkpoint::open_folder(const std::string& dir, const std::string& stem,
                                   const std::string& variant) {
  return open(find_in_folder(dir, stem, variant));
}

std::string Checkpoint::find_in_folder(const std::string& dir, const std::string& stem,
                                       const std::string& variant) {
  std::error_code ec;
  PARADIFF_CHECK(fs::is_directory(dir, ec), dir, ": ",
                 fs::exists(dir, ec) ? "not a directory" : "no such directory");
  check_variant_name(variant);
  std::vector<std::string> tried;
  std::string pickle_hint;
  for (const std::string& s : {stem, std::string("model")}) {
    const std::vector<std::string> names =
        variant.empty()
            ? std::vector<std::string>{s + ".safetensors.index.json", s + ".safetensors"}
            : std::vector<std::string>{s + ".safetensors.index." + variant + ".json",
                                       s + "." + variant + ".safetensors",
                                       s + ".safetensors." + variant + ".index.json"};
    for (const std::string& name : names) {
      if (std::find(tried.begin(), tried.end(), name) != tried.end()) continue;
      tried.push_back(name);
      const fs::path candidate = fs::path(dir) / name;
      // A dangling symbolic link is found too, so that opening it names the file.
      if (fs::exists(candidate, ec) || fs::is_symlink(candidate, ec)) return candidate.string();
    }
    const std::string bin = variant.empty() ? ".bin" : "." + variant + ".bin";
    for (const std::string& name : {s + bin, "pytorch_model" + bin})
      if (pickle_hint.empty() && fs::exists(fs::path(dir) / name, ec))
        pickle_hint = str_cat(" (found ", name,
                              ": PyTorch pickle checkpoints are not supported, only safetensors)");
  }
  std::string list;
  for (const std::string& name : tried) list += (list.empty() ? "" : ", ") + name;
  throw Error(str_cat(dir, ": no safetensors checkpoint",
                      variant.empty() ? std::string() : str_cat(" of variant '", variant, "'"),
                      " found; looked for ", list, pickle_hint));
}

bool Checkpoint::folder_has_variant(const std::string& dir, const std::string& variant) {
  check_variant_name(variant);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return false;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const size_t first = name.find('.');
    if (first == std::string::npos) continue;
    const size_t second = name.find('.', first + 1);
    const std::string part = name.substr(
        first + 1, second == std::string::npos ? std::string::npos : second - first - 1);
    if (part == variant || part.starts_with(variant + "-")) return true;
  }
  return false;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& entry : where_) out.push_back(entry.first);
  return out;
}

bool Checkpoint::contains(const std::string& name) const {
  return where_.count(name) > 0;
}

const SafetensorsFile& Checkpoint::file_of(const std::string& name) const {
  const auto it = where_.find(name);
  PARADIFF_CHECK(it != where_.end(), path_, ": no tensor named ", quote_name(name),
                 " (the checkpoint holds ", where_.size(), " tensors)");
  return shards_[it->second];
}

const SafetensorsTensorInfo& Checkpoint::info(const std::string& name) const {
  return file_of(name).info(name);
}

Tensor Checkpoint::read(const std::string& name, DType want) const {
  return file_of(name).read(name, want);
}

}  // namespace paradiff
