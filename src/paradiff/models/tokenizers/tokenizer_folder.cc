#include "paradiff/models/tokenizers/tokenizer_folder.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "paradiff/core/error.h"
#include "paradiff/io/json_config.h"

namespace paradiff::models::tokenizers {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A special token entry: "<s>" or {"content": "<s>", ...} (older files add "__type").
std::optional<std::string> token_content(const JsonConfig& config, const std::string& key) {
  if (!config.has(key)) return std::nullopt;
  const json& v = config.root().at(key);
  if (v.is_string()) return v.get<std::string>();
  PARADIFF_CHECK(v.is_object() && v.contains("content") && v["content"].is_string(), config.name(),
                 ": '", key, "' must be a string or an object with a string \"content\", got ",
                 json_excerpt(v));
  return v["content"].get<std::string>();
}

bool flag(const json& entry, const char* key, bool default_value, const std::string& where) {
  if (!entry.contains(key) || entry[key].is_null()) return default_value;
  PARADIFF_CHECK(entry[key].is_boolean(), where, ": \"", key, "\" must be true or false, got ",
                 json_excerpt(entry[key]));
  return entry[key].get<bool>();
}

AddedToken parse_added_token(const json& entry, int64_t id, const std::string& where) {
  PARADIFF_CHECK(entry.is_object(), where, " must be an object, got ", json_excerpt(entry));
  PARADIFF_CHECK(entry.contains("content") && entry["content"].is_string(), where,
                 " needs a string \"content\", got ", json_excerpt(entry));
  AddedToken t;
  t.content = entry["content"].get<std::string>();
  t.id = id;
  t.special = flag(entry, "special", false, where);
  t.normalized = flag(entry, "normalized", !t.special, where);
  t.lstrip = flag(entry, "lstrip", false, where);
  t.rstrip = flag(entry, "rstrip", false, where);
  PARADIFF_CHECK(!t.content.empty(), where, " has empty content");
  return t;
}

int64_t parse_id(const json& v, const std::string& where) {
  PARADIFF_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < (1ll << 31),
                 where, ": token id must be an integer in [0, 2^31), got ", json_excerpt(v));
  return v.get<int64_t>();
}

// tokenizer.json: {"added_tokens": [{"id": 0, "content": "<pad>", ...}, ...], ...}
std::vector<AddedToken> added_tokens_of_tokenizer_json(const JsonConfig& config) {
  std::vector<AddedToken> out;
  if (!config.has("added_tokens")) return out;
  const json& list = config.root().at("added_tokens");
  PARADIFF_CHECK(list.is_array(), config.name(), ": \"added_tokens\" must be a list, got ",
                 json_excerpt(list));
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = str_cat(config.name(), ": added_tokens[", i, "]");
    PARADIFF_CHECK(list[i].is_object() && list[i].contains("id"), where,
                   " must be an object with an \"id\", got ", json_excerpt(list[i]));
    out.push_back(parse_added_token(list[i], parse_id(list[i]["id"], where), where));
  }
  return out;
}

// tokenizer_config.json: {"added_tokens_decoder": {"49406": {"content": ..., ...}, ...}}
std::vector<AddedToken> added_tokens_of_config(const JsonConfig& config) {
  std::vector<AddedToken> out;
  const json& map = config.root().at("added_tokens_decoder");
  PARADIFF_CHECK(map.is_object(), config.name(),
                 ": \"added_tokens_decoder\" must be an object, got ", json_excerpt(map));
  for (const auto& [key, entry] : map.items()) {
    const std::string where = str_cat(config.name(), ": added_tokens_decoder[\"", key, "\"]");
    int64_t id = -1;
    try {
      size_t used = 0;
      id = std::stoll(key, &used);
      PARADIFF_CHECK(used == key.size(), "");
    } catch (...) {
      id = -1;
    }
    PARADIFF_CHECK(id >= 0 && id < (1ll << 31), where, ": the key must be a token id");
    out.push_back(parse_added_token(entry, id, where));
  }
  return out;
}

}  // namespace

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  PARADIFF_CHECK(fs::exists(path, ec), path, ": no such file");
  PARADIFF_CHECK(fs::is_regular_file(path, ec), path, ": cannot open: not a regular file");
  std::ifstream in(path, std::ios::binary);
  PARADIFF_CHECK(in.good(), path, ": cannot open: ", std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  PARADIFF_CHECK(!in.bad(), path, ": read error: ", std::strerror(errno));
  return text.str();
}

std::string TokenizerFolder::file(const std::string& name) const {
  return (fs::path(path) / name).string();
}

TokenizerFolder TokenizerFolder::read(const std::string& path) {
  std::error_code ec;
  PARADIFF_CHECK(fs::is_directory(path, ec), "tokenizer folder '", path,
                 "' does not exist or is not a directory");
  TokenizerFolder f;
  f.path = path;
  const auto exists = [&](const char* name) { return fs::exists(f.file(name), ec); };

  if (exists("tokenizer_config.json"))
    f.config =
        std::make_shared<const JsonConfig>(JsonConfig::load(f.file("tokenizer_config.json")));
  const std::shared_ptr<const JsonConfig>& config = f.config;
  std::optional<JsonConfig> special_map;
  if (exists("special_tokens_map.json"))
    special_map = JsonConfig::load(f.file("special_tokens_map.json"));

  auto special = [&](const std::string& key) -> std::optional<std::string> {
    if (config) {
      if (auto v = token_content(*config, key)) return v;
    }
    if (special_map) return token_content(*special_map, key);
    return std::nullopt;
  };
  f.bos_token = special("bos_token");
  f.eos_token = special("eos_token");
  f.unk_token = special("unk_token");
  f.pad_token = special("pad_token");

  if (config) {
    if (auto limit = config->optional_float("model_max_length")) {
      PARADIFF_CHECK(*limit >= 1, config->name(), ": 'model_max_length' must be at least 1, got ",
                     *limit);
      // transformers writes int(1e30) for "no limit".
      if (*limit < 1e9) f.model_max_length = config->get_int("model_max_length", 0, 1, 1'000'000);
    }
    const std::string side = config->get_string("padding_side", "right");
    PARADIFF_CHECK(side == "right" || side == "left", config->name(),
                   ": 'padding_side' must be \"right\" or \"left\", got \"", side, "\"");
    f.padding_left = side == "left";
    f.add_prefix_space = config->get_bool("add_prefix_space", false);
    f.extra_ids = config->optional_int("extra_ids");
    if (f.extra_ids)
      PARADIFF_CHECK(*f.extra_ids >= 0 && *f.extra_ids <= 100000, config->name(),
                     ": 'extra_ids' must be in [0, 100000], got ", *f.extra_ids);
  }

  if (exists("tokenizer.json")) {
    f.tokenizer_json =
        std::make_shared<const JsonConfig>(JsonConfig::load(f.file("tokenizer.json")));
    auto list = added_tokens_of_tokenizer_json(*f.tokenizer_json);
    if (!list.empty()) f.added_tokens = std::move(list);
  } else if (config && config->has("added_tokens_decoder")) {
    auto list = added_tokens_of_config(*config);
    if (!list.empty()) f.added_tokens = std::move(list);
  }
  return f;
}

}  // namespace paradiff::models::tokenizers
