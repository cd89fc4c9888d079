#include "paradiff/io/json_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "paradiff/core/error.h"

namespace paradiff {

namespace {

using nlohmann::json;

// Reads a whole (small) file; errors name the path and the system's reason.
std::string read_text_file(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is then refused as not regular.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  PARADIFF_CHECK(fd >= 0, path, ": cannot open: ", std::strerror(errno));
  std::string text;
  struct stat st {};
  bool ok = ::fstat(fd, &st) == 0;
  int err = errno;
  if (ok && !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(str_cat(
        path, ": cannot open: ", S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file"));
  }
  char buffer[1 << 16];
  while (ok) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = n == 0;
      err = errno;
      break;
    }
    text.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  PARADIFF_CHECK(ok, path, ": cannot read: ", std::strerror(err));
  return text;
}

// nlohmann's messages start with "[json.exception.parse_error.101] "; the rest is what a user
// needs ("parse error at line 2, column 7: syntax error while parsing object ...").
std::string strip_exception_id(const char* what) {
  std::string_view text(what);
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find("] ");
    if (close != std::string_view::npos) text.remove_prefix(close + 2);
  }
  return std::string(text);
}

// One open object or array while parsing: the keys seen so far (objects) and where it sits.
struct OpenContainer {
  bool is_array = false;
  std::set<std::string> keys;
  std::string last_key;
};

// "the top-level object" or "the object at /weight_map" (JSON-pointer style, '*' for arrays).
std::string describe_location(const std::vector<OpenContainer>& open) {
  if (open.size() <= 1) return "the top-level object";
  std::string where;
  for (size_t i = 0; i + 1 < open.size(); ++i)
    where += "/" + (open[i].is_array ? std::string("*") : open[i].last_key);
  return "the object at " + json_excerpt(json(where));
}

}  // namespace

nlohmann::json parse_json_strict(std::string_view text, const std::string& what, int max_depth) {
  // nlohmann's lexer reads a NUL byte as the end of input and would ignore what follows.
  const size_t nul = text.find('\0');
  PARADIFF_CHECK(nul == std::string_view::npos, what, ": invalid JSON: NUL byte at offset ", nul);
  std::vector<OpenContainer> open;
  const json::parser_callback_t track = [&](int /*depth*/, json::parse_event_t event,
                                            json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        PARADIFF_CHECK(static_cast<int>(open.size()) < max_depth, what,
                       ": invalid JSON: nested deeper than ", max_depth, " levels");
        open.push_back({event == json::parse_event_t::array_start, {}, {}});
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        open.pop_back();
        break;
      case json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        PARADIFF_CHECK(open.back().keys.insert(key).second, what, ": invalid JSON: duplicate key ",
                       json_excerpt(parsed), " in ", describe_location(open));
        open.back().last_key = key;
        break;
      }
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), track);
  } catch (const json::exception& e) {
    throw Error(str_cat(what, ": invalid JSON: ", strip_exception_id(e.what())));
  }
}

std::string json_excerpt(const nlohmann::json& value) {
  constexpr size_t kMaxChars = 80;
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() <= kMaxChars) return text;
  size_t cut = kMaxChars;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;  // UTF-8
  // A cut string keeps its closing quote, so that it still reads as one quoted name.
  return text.substr(0, cut) + (value.is_string() ? "...\"" : "...");
}

JsonConfig::JsonConfig(std::shared_ptr<const nlohmann::json> root, std::string name)
    : root_(std::move(root)), name_(std::move(name)) {}

JsonConfig JsonConfig::load(const std::string& path) {
  return parse(read_text_file(path), path);
}

JsonConfig JsonConfig::parse(std::string_view text, const std::string& name) {
  auto root = std::make_shared<json>(parse_json_strict(text, name));
  PARADIFF_CHECK(root->is_object(), name, ": not a JSON object, found ", json_excerpt(*root));
  return JsonConfig(std::move(root), name);
}

const nlohmann::json* JsonConfig::find(const std::string& key) const {
  const auto it = root_->find(key);
  if (it == root_->end() || it->is_null()) return nullptr;
  return &*it;
}

bool JsonConfig::has(const std::string& key) const {
  return find(key) != nullptr;
}

int64_t JsonConfig::to_int(const nlohmann::json& value, const std::string& what) const {
  if (value.is_number_integer() && !value.is_number_unsigned()) return value.get<int64_t>();
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    PARADIFF_CHECK(u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), name_, ": ",
                   what, " must be an integer that fits in 64 bits, got ", u);
    return static_cast<int64_t>(u);
  }
  if (value.is_number_float()) {
    // 3.0 is accepted (some writers emit every number as a float); 2.5 is not an integer.
    const double d = value.get<double>();
    PARADIFF_CHECK(std::trunc(d) == d, name_, ": ", what, " must be an integer, got ",
                   json_excerpt(value));
    PARADIFF_CHECK(d >= -9223372036854775808.0 && d < 9223372036854775808.0, name_, ": ", what,
                   " must be an integer that fits in 64 bits, got ", json_excerpt(value));
    return static_cast<int64_t>(d);
  }
  throw Error(str_cat(name_, ": ", what, " must be an integer, got ", json_excerpt(value)));
}

double JsonConfig::to_float(const nlohmann::json& value, const std::string& what) const {
  PARADIFF_CHECK(value.is_number(), name_, ": ", what, " must be a number, got ",
                 json_excerpt(value));
  return value.get<double>();
}

namespace {
std::string key_name(const std::string& key) {
  return str_cat("config key '", key, "'");
}
}  // namespace

int64_t JsonConfig::get_int(const std::string& key, int64_t default_value) const {
  const json* v = find(key);
  return v ? to_int(*v, key_name(key)) : default_value;
}

int64_t JsonConfig::get_int(const std::string& key, int64_t default_value, int64_t min,
                            int64_t max) const {
  const json* v = find(key);
  if (!v) return default_value;
  const int64_t n = to_int(*v, key_name(key));
  PARADIFF_CHECK(n >= min && n <= max, name_, ": ", key_name(key), " must be in [", min, ", ", max,
                 "], got ", n);
  return n;
}

std::optional<int64_t> JsonConfig::optional_int(const std::string& key) const {
  const json* v = find(key);
  if (!v) return std::nullopt;
  return to_int(*v, key_name(key));
}

int64_t JsonConfig::require_int(const std::string& key) const {
  const json* v = find(key);
  PARADIFF_CHECK(v, name_, ": ", key_name(key), " is required");
  return to_int(*v, key_name(key));
}

double JsonConfig::get_float(const std::string& key, double default_value) const {
  const json* v = find(key);
  return v ? to_float(*v, key_name(key)) : default_value;
}

double JsonConfig::get_float(const std::string& key, double default_value, double min,
                             double max) const {
  const json* v = find(key);
  if (!v) return default_value;
  const double x = to_float(*v, key_name(key));
  PARADIFF_CHECK(x >= min && x <= max, name_, ": ", key_name(key), " must be in [", min, ", ", max,
                 "], got ", json_excerpt(*v));
  return x;
}

std::optional<double> JsonConfig::optional_float(const std::string& key) const {
  const json* v = find(key);
  if (!v) return std::nullopt;
  return to_float(*v, key_name(key));
}

bool JsonConfig::get_bool(const std::string& key, bool default_value) const {
  return optional_bool(key).value_or(default_value);
}

std::optional<bool> JsonConfig::optional_bool(const std::string& key) const {
  const json* v = find(key);
  if (!v) return std::nullopt;
  PARADIFF_CHECK(v->is_boolean(), name_, ": ", key_name(key), " must be true or false, got ",
                 json_excerpt(*v));
  return v->get<bool>();
}

std::string JsonConfig::get_string(const std::string& key, const std::string& default_value) const {
  return optional_string(key).value_or(default_value);
}

std::optional<std::string> JsonConfig::optional_string(const std::string& key) const {
  const json* v = find(key);
  if (!v) return std::nullopt;
  PARADIFF_CHECK(v->is_string(), name_, ": ", key_name(key), " must be a string, got ",
                 json_excerpt(*v));
  return v->get<std::string>();
}

std::vector<int64_t> JsonConfig::get_int_list(const std::string& key,
                                              const std::vector<int64_t>& default_value) const {
  return optional_int_list(key).value_or(default_value);
}

std::optional<std::vector<int64_t>> JsonConfig::optional_int_list(const std::string& key) const {
  const json* v = find(key);
  if (!v) return std::nullopt;
  PARADIFF_CHECK(v->is_array(), name_, ": ", key_name(key), " must be a list of integers, got ",
                 json_excerpt(*v));
  std::vector<int64_t> out;
  for (size_t i = 0; i < v->size(); ++i)
    out.push_back(to_int((*v)[i], str_cat("element ", i, " of ", key_name(key))));
  return out;
}

std::vector<double> JsonConfig::get_float_list(const std::string& key,
                                               const std::vector<double>& default_value) const {
  const json* v = find(key);
  if (!v) return default_value;
  PARADIFF_CHECK(v->is_array(), name_, ": ", key_name(key), " must be a list of numbers, got ",
                 json_excerpt(*v));
  std::vector<double> out;
  for (size_t i = 0; i < v->size(); ++i)
    out.push_back(to_float((*v)[i], str_cat("element ", i, " of ", key_name(key))));
  return out;
}

std::vector<std::string> JsonConfig::get_string_list(
    const std::string& key, const std::vector<std::string>& default_value) const {
  const json* v = find(key);
  if (!v) return default_value;
  PARADIFF_CHECK(v->is_array(), name_, ": ", key_name(key), " must be a list of strings, got ",
                 json_excerpt(*v));
  std::vector<std::string> out;
  for (size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    PARADIFF_CHECK(e.is_string(), name_, ": element ", i, " of ", key_name(key),
                   " must be a string, got ", json_excerpt(e));
    out.push_back(e.get<std::string>());
  }
  return out;
}

}  // namespace paradiff
