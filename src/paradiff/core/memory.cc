#include "paradiff/core/memory.h"

#include <malloc.h>

#include <atomic>

#include <cstdlib>
#include <new>

#include "paradiff/core/error.h"

namespace paradiff {

namespace {
std::atomic<int64_t> g_current{0};
std::atomic<int64_t> g_peak{0};
std::atomic<int64_t> g_count{0};

void raise_peak(int64_t now) {
  int64_t peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}
constexpr int kKeptThreshold = 1 << 30;     // the forwards: keep every block for reuse
constexpr int kLoadingThreshold = 4 << 20;  // loading: map blocks of 4 MiB and more alone
std::atomic<int> g_loading_scopes{0};
}  // namespace

// Keeps freed tensor memory in the process for reuse: by default glibc returns every block above
// 32 MiB (after its dynamic threshold) to the kernel with munmap, so each forward would page-fault
// its activations in afresh (measured: ~8% of a transformer forward in kernel page-fault code).
void keep_freed_memory() {
  static const bool done = [] {
    mallopt(M_MMAP_THRESHOLD, g_loading_scopes.load() > 0 ? kLoadingThreshold : kKeptThreshold);
    mallopt(M_TRIM_THRESHOLD, kKeptThreshold);
    return true;
  }();
  (void)done;
}

std::shared_ptr<std::byte> allocate_bytes(size_t bytes) {
  keep_freed_memory();
  // Round up so that aligned_alloc's size requirement holds; never allocate 0 bytes.
  const size_t rounded = (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
  const size_t size = rounded == 0 ? kTensorAlignment : rounded;
  void* p = std::aligned_alloc(kTensorAlignment, size);
  if (p == nullptr)
    throw Error(str_cat("out of memory allocating ", bytes, " bytes (", current_bytes(),
                        " bytes already held by tensors)"));
  const int64_t accounted = static_cast<int64_t>(size);
  raise_peak(g_current.fetch_add(accounted, std::memory_order_relaxed) + accounted);
  g_count.fetch_add(1, std::memory_order_relaxed);
  return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [accounted](std::byte* q) {
    std::free(q);
    g_current.fetch_sub(accounted, std::memory_order_relaxed);
  });
}

LoadingMemoryScope::LoadingMemoryScope() {
  keep_freed_memory();
  if (g_loading_scopes.fetch_add(1) == 0) mallopt(M_MMAP_THRESHOLD, kLoadingThreshold);
}

LoadingMemoryScope::~LoadingMemoryScope() {
  if (g_loading_scopes.fetch_sub(1) == 1) {
    mallopt(M_MMAP_THRESHOLD, kKeptThreshold);
    release_freed_memory();
  }
}

void release_freed_memory() {
  ::malloc_trim(0);
}

MemoryStats memory_stats() {
  return {g_current.load(), g_peak.load(), g_count.load()};
}
int64_t peak_bytes() {
  return g_peak.load();
}
int64_t current_bytes() {
  return g_current.load();
}
void reset_peak_bytes() {
  g_peak.store(g_current.load());
}

}  // namespace paradiff
