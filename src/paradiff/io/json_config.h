// Reading JSON files written by diffusers and transformers (config.json, index.json) with every
// value's type checked, so that a wrong config fails with the file, the key and the value instead
// of a model with silently wrong settings.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace paradiff {

// Parses JSON text strictly: an object that repeats a key is an error (nlohmann::json, like
// Python, would silently keep the last value, hiding e.g. a tensor listed twice), and so is
// nesting deeper than `max_depth`. Errors read "<what>: invalid JSON: parse error at line 3,
// column 5: ..." or "<what>: invalid JSON: duplicate key \"x\" in ...".
nlohmann::json parse_json_strict(std::string_view text, const std::string& what,
                                 int max_depth = 64);

// A JSON value quoted for an error message: JSON syntax (strings in quotes, control characters
// escaped), cut to about 80 characters.
std::string json_excerpt(const nlohmann::json& value);

// A diffusers-style config.json: one JSON object whose keys are read on demand with checked types.
// Keys that are not asked for are ignored (diffusers ignores "_class_name",
// "_diffusers_version" and unknown extras). A key whose value is null counts as absent, so the
// getter's default applies, as diffusers does for e.g. "out_channels": null.
//
// Type rules: an integer getter accepts a JSON integer in range, or a number with no fractional
// part (3.0); it rejects 2.5, true and "3". A float getter accepts any finite number. Errors read
// "<file>: config key 'num_layers' must be an integer, got \"abc\"".
class JsonConfig {
 public:
  // Reads and parses a file; the error names the file and the parse position.
  static JsonConfig load(const std::string& path);
  // Parses text; `name` stands for the file in error messages.
  static JsonConfig parse(std::string_view text, const std::string& name);

  const std::string& name() const { return name_; }
  // The whole document, for files with structure beyond flat keys (index.json's weight_map).
  const nlohmann::json& root() const { return *root_; }
  // True when the key is present with a non-null value.
  bool has(const std::string& key) const;

  int64_t get_int(const std::string& key, int64_t default_value) const;
  // As get_int, and a present value must lie in [min, max] (the default is not checked).
  int64_t get_int(const std::string& key, int64_t default_value, int64_t min, int64_t max) const;
  std::optional<int64_t> optional_int(const std::string& key) const;
  // Throws "config key 'x' is required" when absent or null.
  int64_t require_int(const std::string& key) const;

  double get_float(const std::string& key, double default_value) const;
  double get_float(const std::string& key, double default_value, double min, double max) const;
  std::optional<double> optional_float(const std::string& key) const;

  bool get_bool(const std::string& key, bool default_value) const;
  std::optional<bool> optional_bool(const std::string& key) const;

  std::string get_string(const std::string& key, const std::string& default_value) const;
  std::optional<std::string> optional_string(const std::string& key) const;

  std::vector<int64_t> get_int_list(const std::string& key,
                                    const std::vector<int64_t>& default_value) const;
  std::optional<std::vector<int64_t>> optional_int_list(const std::string& key) const;
  std::vector<double> get_float_list(const std::string& key,
                                     const std::vector<double>& default_value) const;
  std::vector<std::string> get_string_list(const std::string& key,
                                           const std::vector<std::string>& default_value) const;

 private:
  JsonConfig(std::shared_ptr<const nlohmann::json> root, std::string name);
  // The value of a present, non-null key, or null.
  const nlohmann::json* find(const std::string& key) const;
  int64_t to_int(const nlohmann::json& value, const std::string& what) const;
  double to_float(const nlohmann::json& value, const std::string& what) const;

  std::shared_ptr<const nlohmann::json> root_;  // shared: copies of a config are cheap
  std::string name_;
};

}  // namespace paradiff
