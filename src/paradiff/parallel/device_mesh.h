// The process mesh: the world as data x stage x cfg x ring x ulysses, innermost last, so global
// rank = (((data · S + stage) · G + cfg) · R + ring) · U + ulysses. Stage is model-level
// placement: the ranks among which a device_map deals the transformer's layers. Ulysses groups are
// neighbouring ranks (put them on the fastest link); ring is outer of Ulysses, as upstream. Every
// degree may be 1. One communicator per dimension, plus the two groups the pipeline needs (a
// replica: every rank that makes one image; the context-parallel group: ring x ulysses), are
// created here, explicitly, once; nothing creates them lazily.
#pragma once

#include <memory>

#include "paradiff/dist/communicator.h"
#include "paradiff/parallel/parallel_config.h"

namespace paradiff::parallel {

enum class MeshDim { Data, Cfg, Ring, Ulysses, Stage };
const char* mesh_dim_name(MeshDim dim);

class DeviceMesh {
 public:
  // Collective over `world`: every rank must call it with the same config, which is validated
  // against the world size first.
  DeviceMesh(dist::Communicator& world, const ParallelConfig& config);
  // Context parallelism alone (the rest of the world splits into data-parallel replicas).
  DeviceMesh(dist::Communicator& world, const ContextParallelConfig& config);

  const ParallelConfig& config() const { return config_; }
  // The context-parallel config; degrees 1 x 1 when the mesh has no context parallelism.
  const ContextParallelConfig& context_parallel_config() const { return cp_config_; }
  bool context_parallel_enabled() const { return cp_config_.degree() > 1; }

  int size(MeshDim dim) const { return sizes_[static_cast<int>(dim)]; }
  int index(MeshDim dim) const { return indices_[static_cast<int>(dim)]; }
  // The ranks that differ from this one only along `dim` (size(dim) of them, ordered by index).
  dist::Communicator& comm(MeshDim dim) { return *comms_[static_cast<int>(dim)]; }

  dist::Communicator& world() { return world_; }
  // stage x cfg x ring x ulysses: every rank that works on this rank's images (rank 0 of it
  // encodes).
  dist::Communicator& replica() { return *replica_; }
  // ring x ulysses: the ranks that split one forward's tokens.
  dist::Communicator& context_parallel() { return *cp_; }

  // Shorthands used by the attention code and the tests.
  int data_parallel_index() const { return index(MeshDim::Data); }
  int data_parallel_size() const { return size(MeshDim::Data); }
  int ring_index() const { return index(MeshDim::Ring); }
  int ulysses_index() const { return index(MeshDim::Ulysses); }
  dist::Communicator& ring() { return comm(MeshDim::Ring); }
  dist::Communicator& ulysses() { return comm(MeshDim::Ulysses); }
  dist::Communicator& data_parallel() { return comm(MeshDim::Data); }

  // Bytes this rank sent and time it waited in the mesh's communicators (every dimension, the
  // replica and the context-parallel group) since the last reset.
  dist::CommStats comm_stats() const;
  void reset_comm_stats();

 private:
  std::vector<dist::Communicator*> all_comms() const;

  ParallelConfig config_;
  ContextParallelConfig cp_config_;
  dist::Communicator& world_;
  int sizes_[5] = {1, 1, 1, 1, 1};
  int indices_[5] = {0, 0, 0, 0, 0};
  std::unique_ptr<dist::Communicator> comms_[5];
  std::unique_ptr<dist::Communicator> replica_, cp_;
};

}  // namespace paradiff::parallel
