#include "paradiff/core/process_memory.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "paradiff/core/error.h"
#include "paradiff/core/weight_arena.h"

namespace paradiff {

namespace {

// "Pss:    1234 kB" -> bytes, when `line` starts with `key` (including its colon).
bool field_bytes(const std::string& line, const char* key, int64_t& out) {
  const size_t n = std::char_traits<char>::length(key);
  if (line.compare(0, n, key) != 0) return false;
  long long kb = 0;
  if (std::sscanf(line.c_str() + n, "%lld", &kb) != 1) return false;
  out = static_cast<int64_t>(kb) * 1024;
  return true;
}

std::ifstream open_proc(const char* path) {
  std::ifstream in(path);
  PARADIFF_CHECK(in.good(), "cannot read ", path, " (process memory needs Linux's /proc)");
  return in;
}

// A mapping's header line in smaps: "start-end perms offset dev inode [name]"; field lines
// ("Rss:  4 kB") start with a capital letter and have no '-' in their first word.
bool is_header(const std::string& line) {
  const size_t space = line.find(' ');
  return space != std::string::npos && line.find('-') < space;
}

}  // namespace

ProcessMemory process_memory() {
  ProcessMemory m;
  std::string line;
  {
    std::ifstream in = open_proc("/proc/self/smaps_rollup");
    int64_t v = 0;
    while (std::getline(in, line)) {
      if (field_bytes(line, "Rss:", v)) m.rss_bytes = v;
      if (field_bytes(line, "Pss:", v)) m.pss_bytes = v;
      if (field_bytes(line, "Pss_File:", v)) m.file_pss_bytes = v;
    }
  }
  {
    std::ifstream in = open_proc("/proc/self/status");
    while (std::getline(in, line)) field_bytes(line, "VmHWM:", m.peak_rss_bytes);
  }
  {
    std::ifstream in = open_proc("/proc/self/smaps");
    bool weights = false;
    int64_t v = 0;
    while (std::getline(in, line)) {
      if (is_header(line)) {
        weights = line.find(WeightArena::kMappingName) != std::string::npos;
        continue;
      }
      if (!weights) continue;
      if (field_bytes(line, "Rss:", v)) m.weights_rss_bytes += v;
      if (field_bytes(line, "Pss:", v)) m.weights_pss_bytes += v;
    }
  }
  return m;
}

}  // namespace paradiff
