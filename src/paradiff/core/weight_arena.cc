#include "paradiff/core/weight_arena.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "paradiff/core/error.h"
#include "paradiff/core/memory.h"

namespace paradiff {

namespace {
size_t page_size() {
  return static_cast<size_t>(sysconf(_SC_PAGESIZE));
}
size_t round_up(size_t n, size_t to) {
  return (n + to - 1) / to * to;
}
std::string errno_text() {
  return std::strerror(errno);
}
}  // namespace

std::shared_ptr<WeightArena> WeightArena::create(size_t reserve) {
  std::shared_ptr<WeightArena> arena(new WeightArena());
  arena->fd_ = memfd_create(kMappingName, MFD_CLOEXEC);
  PARADIFF_CHECK(arena->fd_ >= 0, "memfd_create for the shared weights failed: ", errno_text());
  const size_t size = round_up(std::max<size_t>(reserve, 1), page_size());
  PARADIFF_CHECK(ftruncate(arena->fd_, static_cast<off_t>(size)) == 0,
                 "sizing the shared weights segment to ", size, " bytes failed: ", errno_text());
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, arena->fd_, 0);
  PARADIFF_CHECK(p != MAP_FAILED, "mapping the shared weights segment (", size,
                 " bytes reserved) failed: ", errno_text());
  arena->base_ = static_cast<std::byte*>(p);
  arena->mapped_ = size;
  return arena;
}

std::shared_ptr<WeightArena> WeightArena::attach(int pid, int fd, size_t bytes,
                                                 std::vector<Entry> table) {
  std::shared_ptr<WeightArena> arena(new WeightArena());
  arena->filling_ = false;
  arena->table_ = std::move(table);
  arena->used_ = bytes;
  const std::string path = str_cat("/proc/", pid, "/fd/", fd);
  arena->fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  PARADIFF_CHECK(arena->fd_ >= 0, "opening the host's shared weights at ", path,
                 " failed: ", errno_text());
  if (bytes > 0) {
    void* p = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, arena->fd_, 0);
    PARADIFF_CHECK(p != MAP_FAILED, "mapping the host's shared weights (", bytes,
                   " bytes) failed: ", errno_text());
    arena->base_ = static_cast<std::byte*>(p);
    arena->mapped_ = bytes;
  }
  // The mapping keeps the segment alive; the descriptor is not needed any more.
  close(arena->fd_);
  arena->fd_ = -1;
  return arena;
}

WeightArena::~WeightArena() {
  if (base_ != nullptr) munmap(base_, mapped_);
  if (fd_ >= 0) close(fd_);
}

std::shared_ptr<const std::byte> WeightArena::place(size_t bytes, uint64_t key, const Fill& fill) {
  auto self = shared_from_this();
  if (filling_) {
    const size_t offset = round_up(used_, kTensorAlignment);
    PARADIFF_CHECK(offset + bytes <= mapped_, "the shared weights segment is full: ", bytes,
                   " more bytes at offset ", offset, " exceed the ", mapped_, " bytes reserved");
    fill(base_ + offset);
    used_ = offset + bytes;
    table_.push_back({offset, bytes, key});
    return std::shared_ptr<const std::byte>(self, base_ + offset);
  }
  if (!diverged_ && next_ < table_.size() && table_[next_].bytes == bytes &&
      table_[next_].key == key) {
    const Entry& e = table_[next_++];
    shared_ += bytes;
    return std::shared_ptr<const std::byte>(self, base_ + e.offset);
  }
  // This process loads something the filler did not (or not in this order): private from here.
  diverged_ = true;
  std::shared_ptr<std::byte> own = allocate_bytes(bytes);
  fill(own.get());
  private_ += bytes;
  return own;
}

void WeightArena::seal() {
  if (!filling_ || base_ == nullptr) return;
  const size_t keep = round_up(std::max<size_t>(used_, 1), page_size());
  if (keep < mapped_) {
    munmap(base_ + keep, mapped_ - keep);
    PARADIFF_CHECK(ftruncate(fd_, static_cast<off_t>(keep)) == 0,
                   "shrinking the shared weights segment to ", keep,
                   " bytes failed: ", errno_text());
    mapped_ = keep;
  }
  PARADIFF_CHECK(mprotect(base_, mapped_, PROT_READ) == 0,
                 "making the shared weights read-only failed: ", errno_text());
}

void WeightArena::close_descriptor() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

}  // namespace paradiff
