// Memory budgets for placement: accelerate's `max_memory` with a rank (an MPI process) where
// accelerate has a GPU index, and "disk" for weights streamed from the model's own safetensors.
//
// Size strings are read as accelerate's convert_file_size_to_int reads them (integer bytes;
// "16GB" = 16·10^9, "16GiB" = 16·2^30; KB/MB/GB/KiB/MiB/GiB, any case; the number as Python's
// float() reads it, then multiplied and truncated), with one deliberate deviation: accelerate
// reads a lowercase trailing "b" of KB/MB/GB as bits ("16gb" = 2·10^9 bytes), which silently
// gives an eighth of what was meant, and reads "16gib" as bytes. paradiff refuses any unit that
// ends in a lowercase "b" and says what to write instead.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace paradiff::parallel {

// Where a module or component goes: a rank of the placement communicator, or "disk" (the
// weights stay in the model's safetensors files and are streamed by the rank that executes
// them). accelerate's "cpu" has no meaning when every rank is a CPU process and is refused.
class DeviceKey {
 public:
  static DeviceKey rank(int rank);
  static DeviceKey disk() { return DeviceKey(-1); }
  // "0", "3" or "disk"; anything else throws naming the text.
  static DeviceKey parse(std::string_view text);

  bool is_disk() const { return rank_ < 0; }
  bool is_rank() const { return rank_ >= 0; }
  int rank_index() const;   // throws for disk
  std::string str() const;  // "0", "disk"

  // Ranks ascending, then disk: accelerate's get_max_memory order.
  friend bool operator<(DeviceKey a, DeviceKey b) {
    return a.is_disk() != b.is_disk() ? b.is_disk() : a.rank_ < b.rank_;
  }
  friend bool operator==(DeviceKey a, DeviceKey b) { return a.rank_ == b.rank_; }

 private:
  explicit DeviceKey(int rank) : rank_(rank) {}
  int rank_;
};

// accelerate's convert_file_size_to_int for a string: "16GB" -> 16000000000. Throws
// accelerate's message for what it refuses ("`size` 16G is not in a valid format. Use an
// integer for bytes, or a string with an unit (like '5.0GB').") and paradiff's own for a
// lowercase "b". A plain integer string is refused here as accelerate refuses it; integer
// bytes come in through parse_memory_value.
int64_t convert_file_size_to_int(std::string_view size);

// A budget value as written on the command line: digits alone are integer bytes (what a Python
// int is in accelerate's dict), anything else goes through convert_file_size_to_int.
int64_t parse_memory_value(std::string_view value);

// A max_memory dict after accelerate's get_max_memory: ranks ascending, then "disk"; each key
// once.
class MaxMemory {
 public:
  MaxMemory() = default;
  // Sorts the entries into get_max_memory's order; a key given twice throws.
  explicit MaxMemory(std::vector<std::pair<DeviceKey, int64_t>> entries);

  // The command line form "0=16GB,1=16GB,disk=200GB". Every rank must lie in [0, world_size):
  // accelerate only warns about a device it does not have, paradiff refuses it (the map would
  // put weights on a rank that does not exist). "cpu" is refused with the alternatives.
  static MaxMemory parse(std::string_view spec, int world_size);

  const std::vector<std::pair<DeviceKey, int64_t>>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }
  bool contains(DeviceKey device) const;
  int64_t at(DeviceKey device) const;         // throws naming the device when absent
  void set(DeviceKey device, int64_t bytes);  // the key must exist
  std::vector<DeviceKey> devices() const;
  std::string str() const;  // "{0: 16000000000, 1: 16000000000, disk: ...}"

 private:
  std::vector<std::pair<DeviceKey, int64_t>> entries_;
};

// Where the default budget comes from. Tests point these at fixture files.
struct HostMemorySources {
  std::string meminfo = "/proc/meminfo";
  std::string self_cgroup = "/proc/self/cgroup";
  std::string cgroup_root = "/sys/fs/cgroup";
};

// Bytes this host can still give: MemAvailable from /proc/meminfo, or, when this process's
// cgroup (v2 memory.max/memory.current, or v1 memory.limit_in_bytes/memory.usage_in_bytes) has a
// limit, the room left under it if that is lower. Throws when MemAvailable cannot be read.
int64_t available_host_memory(const HostMemorySources& sources = {});

// The default per-rank budget: the host's available memory shared equally among the ranks on
// that host (the caller counts them, e.g. with MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)).
int64_t default_rank_budget(int64_t host_available, int local_ranks);

}  // namespace paradiff::parallel
