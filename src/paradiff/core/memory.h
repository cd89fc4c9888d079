// The one place where tensor memory is allocated: 64-byte aligned, with current and peak bytes
// tracked per process, because peak memory per rank is a headline figure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace paradiff {

inline constexpr size_t kTensorAlignment = 64;

// Returns uninitialised, aligned memory of `bytes` bytes. The returned
// pointer frees itself and updates the accounting when the last owner goes away.
std::shared_ptr<std::byte> allocate_bytes(size_t bytes);

struct MemoryStats {
  int64_t current_bytes = 0;  // bytes held by live allocations now
  int64_t peak_bytes = 0;     // the most held at any time since start or reset_peak_bytes()
  int64_t allocations = 0;    // number of allocations made
};

MemoryStats memory_stats();
int64_t peak_bytes();
int64_t current_bytes();
// Starts a new peak window at the current usage (e.g. to measure one stage).
void reset_peak_bytes();

// Freed memory stays in the process for reuse (see memory.cc); this hands what is free now back
// to the kernel (malloc_trim).
void release_freed_memory();

// Installed around loading a model. Its transients (tensors read, widened, rounded and packed
// once) are never reused, so while a scope is alive blocks of 4 MiB and more are mapped for
// themselves and unmapped when freed, glibc's own default that the forwards turn off (memory.cc);
// when the outermost scope ends, whatever is free is handed back (release_freed_memory). Without
// it, loading the 12B model of scripts/big-model-check.sh with fp8 storage held up to 7.9 GB of
// freed transients beside its 15.1 GB of weights, and kept 4.2 GB of them after the load.
// Scopes nest; construct and destroy them on one thread.
class LoadingMemoryScope {
 public:
  LoadingMemoryScope();
  ~LoadingMemoryScope();
  LoadingMemoryScope(const LoadingMemoryScope&) = delete;
  LoadingMemoryScope& operator=(const LoadingMemoryScope&) = delete;
};

}  // namespace paradiff
