#include "paradiff/parallel/device_mesh.h"

namespace paradiff::parallel {

DeviceMesh::DeviceMesh(dist::Communicator& world, const ContextParallelConfig& config)
    : config_(config), world_(world) {
  config_.validate(world.size());
  const int group = config_.degree();
  const int u = config_.ulysses_degree;
  dp_index_ = world.rank() / group;
  dp_size_ = world.size() / group;
  const int group_rank = world.rank() % group;
  ring_index_ = group_rank / u;
  ulysses_index_ = group_rank % u;
  cp_ = world.split(dp_index_, group_rank);
  ring_ = cp_->split(ulysses_index_, ring_index_);
  ulysses_ = cp_->split(ring_index_, ulysses_index_);
  dp_ = world.split(group_rank, dp_index_);
}

dist::CommStats DeviceMesh::comm_stats() const {
  dist::CommStats total;
  for (const auto* comm : {cp_.get(), ring_.get(), ulysses_.get()}) {
    const auto s = comm->stats();
    total.bytes_sent += s.bytes_sent;
    total.wait_seconds += s.wait_seconds;
  }
  return total;
}

void DeviceMesh::reset_comm_stats() {
  for (auto* comm : {cp_.get(), ring_.get(), ulysses_.get()}) comm->reset_stats();
}

}  // namespace paradiff::parallel
