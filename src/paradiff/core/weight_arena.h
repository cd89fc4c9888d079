// A WeightStore in one anonymous shared-memory segment (memfd_create): one process fills it, the
// other processes of its host map it read-only. The segment has no name in /dev/shm, so nothing
// outlives the processes, however they end: the kernel frees it with the last mapping.
//
// Weights are placed in order; each entry is (offset, bytes, key). A process that attaches to a
// filled arena places the same weights in the same order and gets the filler's memory for each
// entry whose size and key agree. On the first disagreement (a model that loads differently on
// this rank) it stops sharing and fills private memory from there on, so a mismatch costs memory,
// never correctness.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "paradiff/core/weight_store.h"

namespace paradiff {

class WeightArena final : public WeightStore, public std::enable_shared_from_this<WeightArena> {
 public:
  struct Entry {
    uint64_t offset = 0, bytes = 0, key = 0;
  };

  // The substring of the segment's name in /proc/self/smaps ("/memfd:paradiff-weights").
  static constexpr const char* kMappingName = "paradiff-weights";

  // A fresh segment to fill, reserving address space for up to `reserve` bytes (pages are
  // backed only as they are written).
  static std::shared_ptr<WeightArena> create(size_t reserve);
  // Maps read-only the filled segment that process `pid` holds open as descriptor `fd`, of
  // `bytes` bytes, with the filler's `table`. Throws naming the path if it cannot be opened.
  static std::shared_ptr<WeightArena> attach(int pid, int fd, size_t bytes,
                                             std::vector<Entry> table);
  ~WeightArena() override;
  WeightArena(const WeightArena&) = delete;
  WeightArena& operator=(const WeightArena&) = delete;

  std::shared_ptr<const std::byte> place(size_t bytes, uint64_t key, const Fill& fill) override;

  // Filler, after the last place: returns the unused reserve to the kernel and makes the segment
  // read-only.
  void seal();
  // Filler: closes the descriptor once every other process has opened the segment (the
  // mappings keep it alive).
  void close_descriptor();

  bool filling() const { return filling_; }
  int descriptor() const { return fd_; }
  // Bytes of the segment in use (filler: placed so far; attacher: the filler's).
  size_t used_bytes() const { return used_; }
  const std::vector<Entry>& table() const { return table_; }
  // Attacher: bytes taken from the shared segment, and bytes filled privately after a mismatch.
  size_t shared_bytes() const { return shared_; }
  size_t private_bytes() const { return private_; }

 private:
  WeightArena() = default;

  bool filling_ = true;
  int fd_ = -1;
  std::byte* base_ = nullptr;
  size_t mapped_ = 0;  // bytes mapped at base_
  size_t used_ = 0;
  std::vector<Entry> table_;
  size_t next_ = 0;  // attacher: the next table entry to match
  bool diverged_ = false;
  size_t shared_ = 0, private_ = 0;
};

}  // namespace paradiff
