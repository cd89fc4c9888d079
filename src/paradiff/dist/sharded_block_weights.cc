#include "paradiff/dist/sharded_block_weights.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "paradiff/core/error.h"
#include "paradiff/core/logging.h"
#include "paradiff/core/memory.h"
#include "paradiff/core/timer.h"
#include "paradiff/core/weight_arena.h"
#include "paradiff/dist/host_communicator.h"

namespace paradiff::dist {

namespace {

size_t page_size() {
  return static_cast<size_t>(sysconf(_SC_PAGESIZE));
}
size_t round_up(size_t n, size_t to) {
  return (n + to - 1) / to * to;
}
// Address space reserved per segment: all of physical memory (only written pages are backed).
size_t reserve_bytes() {
  return static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * page_size();
}

}  // namespace

ShardedBlockWeights::Segment ShardedBlockWeights::reserve(const char* what, bool keep_descriptor) {
  Segment s;
  s.fd = memfd_create(WeightArena::kMappingName, MFD_CLOEXEC);
  PARADIFF_CHECK(s.fd >= 0, "memfd_create for the ", what, " failed: ", std::strerror(errno));
  s.mapped = round_up(reserve_bytes(), page_size());
  PARADIFF_CHECK(ftruncate(s.fd, static_cast<off_t>(s.mapped)) == 0, "sizing the ", what, " to ",
                 s.mapped, " bytes failed: ", std::strerror(errno));
  void* p = mmap(nullptr, s.mapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, s.fd, 0);
  PARADIFF_CHECK(p != MAP_FAILED, "mapping the ", what, " failed: ", std::strerror(errno));
  s.base = static_cast<std::byte*>(p);
  // The mapping keeps the segment; the descriptor only serves other processes opening it.
  if (!keep_descriptor) {
    close(s.fd);
    s.fd = -1;
  }
  return s;
}

void ShardedBlockWeights::trim(Segment& s, size_t keep, bool read_only) {
  keep = round_up(std::max<size_t>(keep, 1), page_size());
  if (keep < s.mapped) {
    munmap(s.base + keep, s.mapped - keep);
    s.mapped = keep;
  }
  if (read_only)
    PARADIFF_CHECK(mprotect(s.base, s.mapped, PROT_READ) == 0,
                   "making the weight shard read-only failed: ", std::strerror(errno));
}

std::shared_ptr<ShardedBlockWeights> ShardedBlockWeights::create(
    std::unique_ptr<Communicator> shard, WeightStore* outside, bool slices_outside) {
  return std::shared_ptr<ShardedBlockWeights>(
      new ShardedBlockWeights(std::move(shard), outside, slices_outside));
}

ShardedBlockWeights::ShardedBlockWeights(std::unique_ptr<Communicator> shard, WeightStore* outside,
                                         bool slices_outside)
    : shard_(std::move(shard)), outside_(outside), slices_outside_(slices_outside) {
  PARADIFF_CHECK(shard_ != nullptr, "a sharded weight store needs a shard group");
  PARADIFF_CHECK(!slices_outside_ || outside_ != nullptr,
                 "sharing the weight slices needs a store to share them in");
  buffers_[0] = reserve("block weight buffer");
  buffers_[1] = reserve("block weight buffer");
  shard_segment_ = reserve("weight shard", /*keep_descriptor=*/true);
}

ShardedBlockWeights::~ShardedBlockWeights() {
  pending_.reset();  // completes a gather in flight (its peers started it too)
  for (Segment* s : {&buffers_[0], &buffers_[1], &shard_segment_})
    if (s->base != nullptr) munmap(s->base, s->mapped);
  for (Segment& s : peer_shards_)
    if (s.base != nullptr) munmap(s.base, s.mapped);
  if (shard_segment_.fd >= 0) close(shard_segment_.fd);
}

std::shared_ptr<const std::byte> ShardedBlockWeights::place(size_t bytes, uint64_t key,
                                                            const Fill& fill) {
  const int block = current_weight_block();
  if (block < 0) {
    if (outside_ != nullptr) return outside_->place(bytes, key, fill);
    std::shared_ptr<std::byte> own = allocate_bytes(bytes);
    fill(own.get());
    return own;
  }
  PARADIFF_CHECK(!finished_, "block ", block, " placed a weight after the model was loaded");
  const int open = open_ ? static_cast<int>(blocks_.size()) - 1 : -1;
  if (block != open) {
    if (open_) close_block();
    PARADIFF_CHECK(block == static_cast<int>(blocks_.size()),
                   "fully sharded weights need the blocks bound in order 0, 1, 2, ...: got block ",
                   block, " after ", blocks_.size(), " blocks");
    blocks_.emplace_back();
    open_ = true;
    block_used_ = 0;
    resident_[block % 2] = -1;
  }
  Segment& buffer = buffers_[block % 2];
  const size_t offset = round_up(block_used_, kTensorAlignment);
  PARADIFF_CHECK(offset + bytes <= buffer.mapped, "block ", block, " needs more than the ",
                 buffer.mapped, " bytes reserved for a block buffer");
  fill(buffer.base + offset);
  block_used_ = offset + bytes;
  blocks_.back().digest = weight_digest(&key, sizeof(key), blocks_.back().digest);
  return std::shared_ptr<const std::byte>(shared_from_this(), buffer.base + offset);
}

void ShardedBlockWeights::close_block() {
  const int index = static_cast<int>(blocks_.size()) - 1;
  Block& b = blocks_.back();
  const size_t n = static_cast<size_t>(degree());
  b.bytes = block_used_;
  b.padded = round_up(std::max<size_t>(block_used_, 1), n * kTensorAlignment);
  Segment& buffer = buffers_[index % 2];
  PARADIFF_CHECK(b.padded <= buffer.mapped, "block ", index, " padded to ", b.padded,
                 " bytes exceeds its buffer");
  std::memset(buffer.base + b.bytes, 0, b.padded - b.bytes);
  b.digest = weight_digest(buffer.base, b.padded, b.digest);
  const size_t chunk = b.padded / n;
  b.shard_offset = shard_used_;
  const std::byte* mine = buffer.base + static_cast<size_t>(shard_->rank()) * chunk;
  if (slices_outside_) {
    // Keyed by the whole block's bytes and the slice's index: the host's ranks with the same
    // slice get one copy (core/weight_arena.h).
    const int64_t index = shard_->rank();
    auto slice = outside_->place(chunk, weight_digest(&index, sizeof(index), b.digest),
                                 [&](std::byte* dst) { std::memcpy(dst, mine, chunk); });
    b.slice = slice.get();
    outside_slices_.push_back(std::move(slice));
  } else {
    PARADIFF_CHECK(shard_used_ + chunk <= shard_segment_.mapped, "the weight shard is full");
    std::memcpy(shard_segment_.base + shard_used_, mine, chunk);
    b.slice = shard_segment_.base + shard_used_;
  }
  shard_used_ += chunk;
  block_bytes_ += static_cast<int64_t>(b.padded);
  buffer_size_ = std::max(buffer_size_, b.padded);
  resident_[index % 2] = index;
  open_ = false;
}

void ShardedBlockWeights::finish() {
  if (open_) close_block();
  finished_ = true;
  // Every rank must hold the same blocks, packed to the same bytes: the gathered slices are
  // used as they are.
  const size_t count = blocks_.size();
  std::vector<int64_t> low(2 * count + 1), high;
  low[0] = static_cast<int64_t>(count);
  for (size_t i = 0; i < count; ++i) {
    low[1 + 2 * i] = static_cast<int64_t>(blocks_[i].padded);
    low[2 + 2 * i] = static_cast<int64_t>(blocks_[i].digest);
  }
  int64_t counts[2] = {low[0], -low[0]};
  shard_->allreduce(counts, 2, ReduceType::I64, ReduceOp::Max);
  PARADIFF_CHECK(counts[0] == -counts[1],
                 "--fully-shard-degree: the ranks of a shard group loaded ", -counts[1], " to ",
                 counts[0], " transformer blocks; they must load the same model");
  high = low;
  shard_->allreduce(low.data(), low.size(), ReduceType::I64, ReduceOp::Min);
  shard_->allreduce(high.data(), high.size(), ReduceType::I64, ReduceOp::Max);
  for (size_t i = 0; i < count; ++i)
    PARADIFF_CHECK(low[1 + 2 * i] == high[1 + 2 * i] && low[2 + 2 * i] == high[2 + 2 * i],
                   "--fully-shard-degree: the ranks of a shard group packed block ", i,
                   " differently (", low[1 + 2 * i], " to ", high[1 + 2 * i],
                   " bytes, or other bytes); sharding the packed weights needs the same CPU "
                   "(ISA) and oneDNN on every rank of the group");
  trim(buffers_[0], buffer_size_, false);
  trim(buffers_[1], buffer_size_, false);
  trim(shard_segment_, shard_used_, true);
  if (shard_segment_.fd >= 0)
    PARADIFF_CHECK(ftruncate(shard_segment_.fd, static_cast<off_t>(shard_segment_.mapped)) == 0,
                   "shrinking the weight shard failed: ", std::strerror(errno));
  map_peer_shards();
}

void ShardedBlockWeights::map_peer_shards() {
  const char* forced = std::getenv("PARADIFF_SHARD_GATHER");
  const bool mpi_only = forced != nullptr && std::string(forced) == "mpi";
  auto host = host_communicator(*shard_);
  if (mpi_only || slices_outside_ || degree() == 1 || host->size() != shard_->size()) {
    close(shard_segment_.fd);
    shard_segment_.fd = -1;
    return;
  }
  // Every rank's (pid, descriptor); then each maps the others' shards read-only.
  const int64_t mine[2] = {static_cast<int64_t>(getpid()), shard_segment_.fd};
  std::vector<int64_t> all(2 * static_cast<size_t>(degree()));
  const std::vector<size_t> counts(static_cast<size_t>(degree()), sizeof(mine));
  shard_->allgatherv(mine, sizeof(mine), all.data(), counts, exclusive_offsets(counts));
  std::vector<Segment> peers(static_cast<size_t>(degree()));
  std::string failure;
  for (int j = 0; j < degree() && failure.empty(); ++j) {
    if (j == shard_->rank()) continue;
    const size_t at = 2 * static_cast<size_t>(j);
    const std::string path = str_cat("/proc/", all[at], "/fd/", all[at + 1]);
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      failure = str_cat("opening rank ", j, "'s weight shard at ", path,
                        " failed: ", std::strerror(errno));
      break;
    }
    void* p = mmap(nullptr, shard_segment_.mapped, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
      failure = str_cat("mapping rank ", j, "'s weight shard failed: ", std::strerror(errno));
      break;
    }
    peers[static_cast<size_t>(j)] = {-1, static_cast<std::byte*>(p), shard_segment_.mapped};
  }
  // Every rank has opened the others' segments (or failed): the descriptors may go.
  int64_t failed = failure.empty() ? 0 : 1;
  shard_->allreduce(&failed, 1, ReduceType::I64, ReduceOp::Max);
  close(shard_segment_.fd);
  shard_segment_.fd = -1;
  peer_shards_ = std::move(peers);
  if (failed != 0) {
    // Some rank could not map its peers: every rank gathers with MPI instead.
    for (Segment& s : peer_shards_)
      if (s.base != nullptr) munmap(s.base, s.mapped);
    peer_shards_.clear();
    if (!failure.empty()) log_warning(failure, "; gathering block weights with MPI instead");
  }
}

void ShardedBlockWeights::start_gather(int block) {
  const Block& b = blocks_[static_cast<size_t>(block)];
  const size_t chunk = b.padded / static_cast<size_t>(degree());
  resident_[block % 2] = -1;
  gathered_bytes_ += static_cast<int64_t>(chunk) * (degree() - 1);
  ++gathers_;
  std::byte* buffer = buffers_[block % 2].base;
  if (gathers_locally()) {
    // The shards are immutable after loading: a copy, no message.
    Stopwatch copying;
    for (int j = 0; j < degree(); ++j) {
      const std::byte* from =
          j == shard_->rank() ? shard_segment_.base : peer_shards_[static_cast<size_t>(j)].base;
      std::memcpy(buffer + static_cast<size_t>(j) * chunk, from + b.shard_offset, chunk);
    }
    resident_[block % 2] = block;
    copy_seconds_ += copying.seconds();
    return;
  }
  pending_ = shard_->iallgather(b.slice, chunk, buffer);
  pending_block_ = block;
}

void ShardedBlockWeights::wait_pending() {
  if (!pending_) return;
  pending_->wait();
  pending_.reset();
  resident_[pending_block_ % 2] = pending_block_;
  pending_block_ = -1;
}

void ShardedBlockWeights::before_block(int block) {
  PARADIFF_CHECK(finished_, "a fully sharded block ran before its model finished loading");
  const int count = blocks();
  PARADIFF_CHECK(block >= 0 && block < count, "block ", block, " is not one of the ", count,
                 " fully sharded blocks");
  if (pending_block_ == block || resident_[block % 2] != block) {
    wait_pending();  // the block itself, or one in the other buffer or this one
    if (resident_[block % 2] != block) {
      start_gather(block);
      wait_pending();
    }
  }
  // The next block (after the last: the first, for the next batch element or forward) goes to
  // the other buffer, whose block has run. Not when it shares this block's buffer (the first
  // after an odd count), nor with two blocks or fewer (every block stays resident).
  const int next = (block + 1) % count;
  if (count > 2 && next % 2 != block % 2 && !pending_ && resident_[next % 2] != next)
    start_gather(next);
}

void check_fully_shard_degree(int degree, int group_size) {
  PARADIFF_CHECK(degree >= 1, "--fully-shard-degree must be at least 1, got ", degree);
  PARADIFF_CHECK(group_size % degree == 0, "--fully-shard-degree ", degree,
                 " must divide the context-parallel group's size (ring x ulysses = ", group_size,
                 ")");
}

std::unique_ptr<Communicator> fully_shard_group(Communicator& group, int degree) {
  check_fully_shard_degree(degree, group.size());
  const int stride = group.size() / degree;
  return group.split(group.rank() % stride, group.rank());
}

bool shard_groups_span_hosts(const Communicator& shard, Communicator& over) {
  int64_t shared_host = host_communicator(shard)->size() > 1 ? 1 : 0;
  over.allreduce(&shared_host, 1, ReduceType::I64, ReduceOp::Max);
  return shared_host == 0;
}

std::shared_ptr<ShardedBlockWeights> load_fully_sharded(std::unique_ptr<Communicator> shard,
                                                        const std::function<void()>& load,
                                                        bool slices_outside) {
  auto store =
      ShardedBlockWeights::create(std::move(shard), current_weight_store(), slices_outside);
  {
    WeightStoreScope scope(store.get());
    BlockWeightsScope hook(store);
    load();
  }
  store->finish();
  return store;
}

}  // namespace paradiff::dist
