// Transformer block weights sharded across ranks (--fully-shard-degree N, xDiT's
// fully_shard_degree with FSDP's reshard_after_forward): each of the N ranks of a shard group
// keeps 1/N of every block's prepared (oneDNN-packed) weights; before a block runs, its full
// weights are all-gathered into one of two reused block buffers, and the next block's gather is
// started (MPI_Iallgather) so that it overlaps the current block's compute.
//
// How the model's layers find their weights: at load time a block's layers are marked
// (core/block_weights.h, WeightBlockScope) and this store places block k's prepared weights at
// fixed offsets in buffer k % 2, so every layer keeps one address for its whole life; that buffer
// then holds block k whenever block k runs. Once a block is loaded, this rank copies its 1/N
// slice of the block's bytes (padded to N x 64) into its shard. The packed bytes are what is
// gathered (no repacking per use), which needs every rank of the group to pack alike (the same
// oneDNN and ISA): finish() checks that, digest by digest, and refuses otherwise.
//
// How a block is gathered: when every rank of the shard group is on this host (and can open the
// others' memory), each rank maps the others' shards read-only after loading and a gather is a
// memcpy of their slices; otherwise (ranks on several hosts) an MPI_Iallgather. The environment
// variable PARADIFF_SHARD_GATHER=mpi forces MPI (tests and benchmarks of that path).
//
// Weights outside blocks (embedders, head) and the blocks' small unpacked parameters (biases,
// norm scales) stay replicated. Memory per rank: the replicated weights + the blocks / N + the
// two block buffers; all three in "paradiff-weights" segments (core/weight_arena.h), counted as
// weights by core/process_memory.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "paradiff/core/block_weights.h"
#include "paradiff/core/weight_store.h"
#include "paradiff/dist/communicator.h"

namespace paradiff::dist {

class ShardedBlockWeights final : public WeightStore,
                                  public BlockWeights,
                                  public std::enable_shared_from_this<ShardedBlockWeights> {
 public:
  // `shard`: the group among which the blocks are split (its size is the degree). `outside`:
  // where weights outside blocks go (null: private memory); it must outlive this store. With
  // `slices_outside`, this rank's slices go there too (a host's weight arena: the ranks of one
  // host that hold the same slices then share them), else to a private segment.
  static std::shared_ptr<ShardedBlockWeights> create(std::unique_ptr<Communicator> shard,
                                                     WeightStore* outside,
                                                     bool slices_outside = false);
  ~ShardedBlockWeights() override;
  ShardedBlockWeights(const ShardedBlockWeights&) = delete;
  ShardedBlockWeights& operator=(const ShardedBlockWeights&) = delete;

  std::shared_ptr<const std::byte> place(size_t bytes, uint64_t key, const Fill& fill) override;
  // After the model is loaded (collective over the shard group): closes the last block, checks
  // that every rank packed every block to the same bytes, and trims the buffers.
  void finish();
  void before_block(int block) override;

  int degree() const { return shard_->size(); }
  int blocks() const { return static_cast<int>(blocks_.size()); }
  // One full copy of the blocks' prepared weights (each block padded to degree x 64 bytes).
  int64_t block_bytes() const { return block_bytes_; }
  // This rank's shard: block_bytes() / degree().
  int64_t shard_bytes() const { return static_cast<int64_t>(shard_used_); }
  // Whether the shard was placed in the `outside` store (see create).
  bool slices_outside() const { return slices_outside_; }
  // The two block buffers (each the largest block).
  int64_t buffer_bytes() const { return static_cast<int64_t>(2 * buffer_size_); }
  // Bytes this rank received from the others' shards, and the gathers started, since the last
  // reset_stats().
  int64_t gathered_bytes() const { return gathered_bytes_; }
  int64_t gathers() const { return gathers_; }
  // Whether gathers copy from the other ranks' mapped shards (all on this host) or use MPI.
  bool gathers_locally() const { return !peer_shards_.empty(); }
  // Seconds the forward spent on gathers: blocked waiting for MPI's (what the overlap did not
  // hide), or copying (local gathers are not overlapped).
  double wait_seconds() const { return shard_->stats().wait_seconds + copy_seconds_; }
  void reset_stats() {
    gathered_bytes_ = gathers_ = 0;
    copy_seconds_ = 0;
    shard_->reset_stats();
  }

 private:
  struct Block {
    size_t bytes = 0, padded = 0, shard_offset = 0;
    uint64_t digest = 0;
    const std::byte* slice = nullptr;  // this rank's slice (in the shard or the outside store)
  };
  struct Segment {
    int fd = -1;
    std::byte* base = nullptr;
    size_t mapped = 0;
  };
  // After loading, collective: maps the other ranks' shards when they are all on this host.
  void map_peer_shards();

  ShardedBlockWeights(std::unique_ptr<Communicator> shard, WeightStore* outside,
                      bool slices_outside);
  void close_block();
  void start_gather(int block);
  void wait_pending();
  static Segment reserve(const char* what, bool keep_descriptor = false);
  static void trim(Segment& segment, size_t keep, bool read_only);

  std::unique_ptr<Communicator> shard_;
  WeightStore* outside_;
  bool slices_outside_ = false;
  std::vector<std::shared_ptr<const std::byte>> outside_slices_;  // keeps them alive
  Segment buffers_[2], shard_segment_;
  std::vector<Block> blocks_;
  bool open_ = false, finished_ = false;
  size_t block_used_ = 0;  // bytes placed so far in the open block
  size_t shard_used_ = 0, buffer_size_ = 0;
  int64_t block_bytes_ = 0;
  int resident_[2] = {-1, -1};  // the block each buffer holds (-1: none, or being overwritten)
  std::vector<Segment> peer_shards_;  // by rank of the shard group (this rank's: unmapped)
  std::unique_ptr<Request> pending_;
  int pending_block_ = -1;
  int64_t gathered_bytes_ = 0, gathers_ = 0;
  double copy_seconds_ = 0;
};

// The shard group of this rank of `group` (a context-parallel group of size G) for degree N:
// the N ranks whose index in `group` is the same modulo G / N, so that with G / N consecutive
// ranks per host it holds one rank of each host. Collective over `group`. Refuses, naming both,
// N < 1 or N not dividing G.
std::unique_ptr<Communicator> fully_shard_group(Communicator& group, int degree);
// The refusals of fully_shard_group alone (no communicator needed).
void check_fully_shard_degree(int degree, int group_size);

// Whether every shard group of `shard`'s kind has one rank per host, decided together over
// `over` (collective over `shard`, then `over`): the ranks of one host then hold the same slices
// (with G / N consecutive ranks per host, shard index = host index) and can share them.
bool shard_groups_span_hosts(const Communicator& shard, Communicator& over);

// Runs `load` with the store above installed (weights outside blocks, and with `slices_outside`
// this rank's slices, go to the store installed on this thread now) and the model's block hook
// set to it, then finish()es it. Collective over `shard`'s parent group.
std::shared_ptr<ShardedBlockWeights> load_fully_sharded(std::unique_ptr<Communicator> shard,
                                                        const std::function<void()>& load,
                                                        bool slices_outside = false);

}  // namespace paradiff::dist
