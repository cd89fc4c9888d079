#include "paradiff/dist/host_weights.h"

#include <unistd.h>

#include <vector>

#include "paradiff/core/error.h"

namespace paradiff::dist {

namespace {

// Address space reserved for one model's prepared weights: all of physical memory (only the
// pages written are backed).
size_t reserve_bytes() {
  return static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Fills a private arena with `load`.
std::shared_ptr<WeightArena> fill(const std::function<void()>& load) {
  auto arena = WeightArena::create(reserve_bytes());
  {
    WeightStoreScope scope(arena.get());
    load();
  }
  arena->seal();
  arena->close_descriptor();
  return arena;
}

// What the first rank tells the others.
struct Announcement {
  int64_t ok = 0, pid = 0, fd = -1, bytes = 0, entries = 0;
};

}  // namespace

WeightSharing parse_weight_sharing(const std::string& value) {
  if (value == "auto") return WeightSharing::Auto;
  if (value == "on") return WeightSharing::On;
  PARADIFF_CHECK(value == "off", "--share-weights must be auto, on or off, got '", value, "'");
  return WeightSharing::Off;
}

HostWeights load_with_host_weights(Communicator& host, WeightSharing sharing,
                                   const std::function<void()>& load) {
  HostWeights out;
  const bool share = sharing != WeightSharing::Off && host.size() > 1;
  if (!share) {
    out.arena = fill(load);
    out.weight_bytes = static_cast<int64_t>(out.arena->used_bytes());
    return out;
  }
  Announcement a;
  std::vector<WeightArena::Entry> table;
  if (host.rank() == 0) {
    auto arena = WeightArena::create(reserve_bytes());
    try {
      WeightStoreScope scope(arena.get());
      load();
      arena->seal();
    } catch (...) {
      host.broadcast(&a, sizeof(a), 0);  // ok = 0: the others stop instead of waiting
      throw;
    }
    a = {1, static_cast<int64_t>(getpid()), arena->descriptor(),
         static_cast<int64_t>(arena->used_bytes()), static_cast<int64_t>(arena->table().size())};
    host.broadcast(&a, sizeof(a), 0);
    table = arena->table();
    host.broadcast(table.data(), table.size() * sizeof(WeightArena::Entry), 0);
    host.barrier();  // every other rank has mapped the segment
    arena->close_descriptor();
    out.arena = arena;
  } else {
    host.broadcast(&a, sizeof(a), 0);
    PARADIFF_CHECK(a.ok == 1, "the host's first rank failed to load the model; not loading here");
    table.resize(static_cast<size_t>(a.entries));
    host.broadcast(table.data(), table.size() * sizeof(WeightArena::Entry), 0);
    std::shared_ptr<WeightArena> arena;
    std::string failure;
    try {
      arena = WeightArena::attach(static_cast<int>(a.pid), static_cast<int>(a.fd),
                                  static_cast<size_t>(a.bytes), std::move(table));
    } catch (const std::exception& e) {
      failure = e.what();
    }
    host.barrier();  // the first rank may close its descriptor now
    PARADIFF_CHECK(failure.empty(), failure);
    WeightStoreScope scope(arena.get());
    load();
    out.arena = arena;
  }
  out.shared = true;
  out.weight_bytes = a.bytes;
  return out;
}

}  // namespace paradiff::dist
