#include "paradiff/parallel/placement/memory_budget.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "paradiff/core/error.h"

namespace paradiff::parallel {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A run of digits where single underscores may separate digits (Python's float() grammar).
bool digit_run(std::string_view s, size_t& i) {
  size_t start = i;
  while (i < s.size()) {
    if (std::isdigit(static_cast<unsigned char>(s[i]))) {
      ++i;
    } else if (s[i] == '_' && i > start && i + 1 < s.size() &&
               std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      ++i;
    } else {
      break;
    }
  }
  return i > start;
}

// Python's float(text) for finite decimal numbers; nullopt where Python raises or gives inf/nan
// (accelerate then raises too, or fails to convert the product to an int).
std::optional<double> python_float(std::string_view text) {
  std::string_view s = trim(text);
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  bool whole = digit_run(s, i);
  bool fraction = false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    fraction = digit_run(s, i);
  }
  if (!whole && !fraction) return std::nullopt;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digit_run(s, i)) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  std::string plain;
  for (char c : s)
    if (c != '_') plain += c;
  double value = std::strtod(plain.c_str(), nullptr);
  if (!std::isfinite(value)) return std::nullopt;
  return value;
}

std::string accelerate_format_error(std::string_view size) {
  return str_cat("`size` ", size,
                 " is not in a valid format. Use an integer for bytes, or a string with an unit "
                 "(like '5.0GB').");
}

std::optional<std::string> read_first_line(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string line;
  std::getline(in, line);
  return std::string(trim(line));
}

// The room left under a cgroup limit, or nullopt when there is no limit (or no cgroup files).
std::optional<int64_t> cgroup_room(const std::string& limit_path, const std::string& usage_path) {
  auto limit = read_first_line(limit_path);
  if (!limit || !all_digits(*limit)) return std::nullopt;  // "max", or absent
  // cgroup v1 writes an unlimited limit as a page-rounded 2^63-1.
  if (limit->size() > 18) return std::nullopt;
  int64_t bytes = std::stoll(*limit);
  if (bytes >= (int64_t{1} << 62)) return std::nullopt;
  auto usage = read_first_line(usage_path);
  int64_t used = usage && all_digits(*usage) ? std::stoll(*usage) : 0;
  return std::max<int64_t>(0, bytes - used);
}

}  // namespace

DeviceKey DeviceKey::rank(int rank) {
  PARADIFF_CHECK(rank >= 0, "a rank must be >= 0, got ", rank);
  return DeviceKey(rank);
}

DeviceKey DeviceKey::parse(std::string_view text) {
  std::string_view t = trim(text);
  if (t == "disk") return disk();
  PARADIFF_CHECK(t != "cpu",
                 "device 'cpu': every rank is a CPU process here, so accelerate's \"cpu\" has no "
                 "meaning; use a rank (an integer) or \"disk\"");
  PARADIFF_CHECK(all_digits(t) && t.size() <= 9, "device '", text,
                 "' is not recognized; devices are ranks (integers >= 0) and \"disk\"");
  return DeviceKey(std::stoi(std::string(t)));
}

int DeviceKey::rank_index() const {
  PARADIFF_CHECK(is_rank(), "\"disk\" is not a rank");
  return rank_;
}

std::string DeviceKey::str() const {
  return is_disk() ? "disk" : std::to_string(rank_);
}

int64_t convert_file_size_to_int(std::string_view size) {
  const std::string up = upper(size);
  struct Unit {
    const char* name;
    double factor;
    bool binary;
  };
  static const Unit kUnits[] = {
      {"GIB", 1073741824.0, true}, {"MIB", 1048576.0, true}, {"KIB", 1024.0, true},
      {"GB", 1e9, false},          {"MB", 1e6, false},       {"KB", 1e3, false},
  };
  for (const Unit& unit : kUnits) {
    const std::string_view name = unit.name;
    if (!ends_with(up, name)) continue;
    const std::string_view written = size.substr(size.size() - name.size());
    if (written.back() == 'b') {
      // Deviation from accelerate (see the header): refuse instead of reading bits.
      const std::string_view number = size.substr(0, size.size() - name.size());
      const char prefix =
          static_cast<char>(std::toupper(static_cast<unsigned char>(up[up.size() - name.size()])));
      if (unit.binary)
        throw Error(str_cat("memory size '", size,
                            "': a lowercase 'b' means bits; paradiff refuses it as ambiguous. "
                            "Write '",
                            number, prefix, "iB' (",
                            prefix == 'G'   ? "2^30"
                            : prefix == 'M' ? "2^20"
                                            : "2^10",
                            "-based bytes)"));
      throw Error(str_cat(
          "memory size '", size, "': accelerate reads a lowercase 'b' as bits (an eighth of ",
          number, prefix, "B); paradiff refuses it as ambiguous. Write '", number, prefix, "B' (",
          prefix == 'G'   ? "10^9"
          : prefix == 'M' ? "10^6"
                          : "10^3",
          "-based bytes) or '", number, prefix, "iB' (",
          prefix == 'G'   ? "2^30"
          : prefix == 'M' ? "2^20"
                          : "2^10",
          "-based bytes)"));
    }
    const auto number = python_float(size.substr(0, size.size() - name.size()));
    PARADIFF_CHECK(number.has_value(), accelerate_format_error(size));
    const double bytes = *number * unit.factor;
    PARADIFF_CHECK(bytes < 9.2e18, "memory size '", size, "' is too large");
    const auto result = static_cast<int64_t>(bytes);  // Python's int(): toward zero
    PARADIFF_CHECK(result >= 0, accelerate_format_error(size));
    return result;
  }
  throw Error(accelerate_format_error(size));
}

int64_t parse_memory_value(std::string_view value) {
  const std::string_view t = trim(value);
  if (all_digits(t)) {
    PARADIFF_CHECK(t.size() <= 18, "memory size '", value, "' is too large");
    return std::stoll(std::string(t));
  }
  return convert_file_size_to_int(value);
}

MaxMemory::MaxMemory(std::vector<std::pair<DeviceKey, int64_t>> entries)
    : entries_(std::move(entries)) {
  std::stable_sort(entries_.begin(), entries_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < entries_.size(); ++i)
    PARADIFF_CHECK(!(entries_[i].first == entries_[i - 1].first), "max_memory gives device ",
                   entries_[i].first.str(), " twice");
  for (const auto& [device, bytes] : entries_)
    PARADIFF_CHECK(bytes >= 0, "max_memory for device ", device.str(), " is negative: ", bytes);
}

MaxMemory MaxMemory::parse(std::string_view spec, int world_size) {
  PARADIFF_CHECK(world_size >= 1, "world size must be >= 1, got ", world_size);
  std::vector<std::pair<DeviceKey, int64_t>> entries;
  std::string_view rest = spec;
  while (!trim(rest).empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const size_t eq = item.find('=');
    PARADIFF_CHECK(eq != std::string_view::npos && eq > 0, "max_memory entry '", item,
                   "' must be KEY=SIZE, e.g. 0=16GB or disk=200GB");
    const std::string_view key = trim(item.substr(0, eq));
    PARADIFF_CHECK(key != "cpu",
                   "max_memory key 'cpu': every rank is a CPU process here, so accelerate's "
                   "\"cpu\" has no meaning; give each rank (0..",
                   world_size - 1, ") its budget, and \"disk\" for weights streamed from disk");
    PARADIFF_CHECK(key == "disk" || all_digits(key), "max_memory key '", key,
                   "' is not recognized; keys are ranks (integers 0..", world_size - 1,
                   ") and 'disk'");
    const DeviceKey device = DeviceKey::parse(key);
    PARADIFF_CHECK(device.is_disk() || device.rank_index() < world_size, "max_memory names rank ",
                   key, ", but the world has ", world_size, " rank(s) (0..", world_size - 1, ")");
    try {
      entries.emplace_back(device, parse_memory_value(item.substr(eq + 1)));
    } catch (const Error& e) {
      throw Error(str_cat("max_memory entry '", item, "': ", e.what()));
    }
  }
  return MaxMemory(std::move(entries));
}

bool MaxMemory::contains(DeviceKey device) const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const auto& e) { return e.first == device; });
}

int64_t MaxMemory::at(DeviceKey device) const {
  for (const auto& [d, bytes] : entries_)
    if (d == device) return bytes;
  throw Error(str_cat("max_memory has no entry for device ", device.str(), ": ", str()));
}

void MaxMemory::set(DeviceKey device, int64_t bytes) {
  for (auto& [d, b] : entries_)
    if (d == device) {
      b = bytes;
      return;
    }
  throw Error(str_cat("max_memory has no entry for device ", device.str(), ": ", str()));
}

std::vector<DeviceKey> MaxMemory::devices() const {
  std::vector<DeviceKey> out;
  for (const auto& e : entries_) out.push_back(e.first);
  return out;
}

std::string MaxMemory::str() const {
  std::ostringstream out;
  out << "{";
  for (size_t i = 0; i < entries_.size(); ++i)
    out << (i ? ", " : "") << entries_[i].first.str() << ": " << entries_[i].second;
  out << "}";
  return out.str();
}

int64_t available_host_memory(const HostMemorySources& sources) {
  std::ifstream meminfo(sources.meminfo);
  PARADIFF_CHECK(meminfo.good(), sources.meminfo, ": cannot open (needed for the default budget;",
                 " give --max-memory instead)");
  std::optional<int64_t> available;
  std::string line;
  while (std::getline(meminfo, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    int64_t kib = -1;
    std::string unit;
    fields >> kib >> unit;
    PARADIFF_CHECK(kib >= 0 && unit == "kB", sources.meminfo, ": cannot read '", line, "'");
    available = kib * 1024;
  }
  PARADIFF_CHECK(available.has_value(), sources.meminfo, " has no MemAvailable line");
  int64_t result = *available;

  std::ifstream cgroups(sources.self_cgroup);
  while (cgroups && std::getline(cgroups, line)) {
    // "0::/path" (v2) or "7:memory:/path" (v1; the controller list may hold several names).
    const size_t first = line.find(':');
    const size_t second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    std::optional<int64_t> room;
    if (controllers.empty()) {
      const std::string dir = sources.cgroup_root + (path == "/" ? "" : path);
      room = cgroup_room(dir + "/memory.max", dir + "/memory.current");
      if (!room)
        room = cgroup_room(sources.cgroup_root + "/memory.max",
                           sources.cgroup_root + "/memory.current");
    } else if (str_cat(",", controllers, ",").find(",memory,") != std::string::npos) {
      const std::string base = sources.cgroup_root + "/memory";
      const std::string dir = base + (path == "/" ? "" : path);
      room = cgroup_room(dir + "/memory.limit_in_bytes", dir + "/memory.usage_in_bytes");
      if (!room)
        room = cgroup_room(base + "/memory.limit_in_bytes", base + "/memory.usage_in_bytes");
    }
    if (room) result = std::min(result, *room);
  }
  return result;
}

int64_t default_rank_budget(int64_t host_available, int local_ranks) {
  PARADIFF_CHECK(local_ranks >= 1, "the number of ranks on this host must be >= 1, got ",
                 local_ranks);
  PARADIFF_CHECK(host_available >= 0, "available host memory is negative: ", host_available);
  return host_available / local_ranks;
}

}  // namespace paradiff::parallel
