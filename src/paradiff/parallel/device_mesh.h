// The process mesh: the world split into data-parallel groups of R x U consecutive ranks, each
// group a (ring, ulysses) mesh with ring outer: group rank = ring_index · U + ulysses_index, so
// Ulysses groups are neighbouring ranks (put them on the fastest link). Communicators are created
// here, explicitly, once; nothing creates them lazily.
#pragma once

#include <memory>

#include "paradiff/dist/communicator.h"
#include "paradiff/parallel/parallel_config.h"

namespace paradiff::parallel {

class DeviceMesh {
 public:
  // Collective over `world`: every rank must call it with the same config.
  DeviceMesh(dist::Communicator& world, const ContextParallelConfig& config);

  const ContextParallelConfig& config() const { return config_; }
  int data_parallel_index() const { return dp_index_; }  // which group this rank is in
  int data_parallel_size() const { return dp_size_; }    // how many groups
  int ring_index() const { return ring_index_; }
  int ulysses_index() const { return ulysses_index_; }

  dist::Communicator& world() { return world_; }
  dist::Communicator& context_parallel() { return *cp_; }  // the R x U group
  dist::Communicator& ring() { return *ring_; }            // same ulysses_index, size R
  dist::Communicator& ulysses() { return *ulysses_; }      // same ring_index, size U
  dist::Communicator& data_parallel() { return *dp_; }     // same group rank, size dp_size

  // Bytes this rank sent and time it waited in the context-parallel communicators (group, ring,
  // Ulysses) since the last reset.
  dist::CommStats comm_stats() const;
  void reset_comm_stats();

 private:
  ContextParallelConfig config_;
  dist::Communicator& world_;
  int dp_index_ = 0, dp_size_ = 1, ring_index_ = 0, ulysses_index_ = 0;
  std::unique_ptr<dist::Communicator> cp_, ring_, ulysses_, dp_;
};

}  // namespace paradiff::parallel
