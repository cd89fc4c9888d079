// What the kernel says this process holds, as opposed to what its tensors hold (memory.h): resident
// set (RSS), proportional set (PSS: each shared page divided among the processes mapping it, so
// that PSS summed over processes counts a shared page once), and the part of both in weight
// arenas (core/weight_arena.h). Read from /proc/self/smaps_rollup, /proc/self/smaps and
// /proc/self/status (Linux).
#pragma once

#include <cstdint>

namespace paradiff {

struct ProcessMemory {
  int64_t rss_bytes = 0, pss_bytes = 0;                  // now
  int64_t peak_rss_bytes = 0;                            // VmHWM: the largest RSS so far
  int64_t weights_rss_bytes = 0, weights_pss_bytes = 0;  // in weight arenas, now
  // Of pss_bytes, the pages of mapped files (checkpoints read in place): the kernel can drop
  // them under pressure and read them again, unlike the rest.
  int64_t file_pss_bytes = 0;
};

// Throws if /proc cannot be read.
ProcessMemory process_memory();

}  // namespace paradiff
