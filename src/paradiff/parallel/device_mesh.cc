#include "paradiff/parallel/device_mesh.h"

namespace paradiff::parallel {

const char* mesh_dim_name(MeshDim dim) {
  switch (dim) {
    case MeshDim::Data:
      return "data";
    case MeshDim::Cfg:
      return "cfg";
    case MeshDim::Ring:
      return "ring";
    case MeshDim::Ulysses:
      return "ulysses";
    case MeshDim::Stage:
      return "stage";
  }
  return "?";
}

DeviceMesh::DeviceMesh(dist::Communicator& world, const ContextParallelConfig& config)
    : DeviceMesh(world, ParallelConfig{config}) {}

DeviceMesh::DeviceMesh(dist::Communicator& world, const ParallelConfig& config)
    : config_(config), world_(world) {
  config_.validate(world.size());
  cp_config_ = config_.context_parallel_config.value_or(ContextParallelConfig{});
  const int st = config_.stage_degree, g = config_.cfg_degree, r = cp_config_.ring_degree,
            u = cp_config_.ulysses_degree;
  const int replica = st * g * r * u, inner = g * r * u;
  sizes_[0] = world.size() / replica, sizes_[1] = g, sizes_[2] = r, sizes_[3] = u, sizes_[4] = st;
  const int rank = world.rank();
  const int d = rank / replica, in_replica = rank % replica;
  const int s = in_replica / inner, in_stage = in_replica % inner;
  const int c = in_stage / (r * u), in_cp = in_stage % (r * u);
  const int ri = in_cp / u, ui = in_cp % u;
  indices_[0] = d, indices_[1] = c, indices_[2] = ri, indices_[3] = ui, indices_[4] = s;

  // Each split keeps the ranks that agree on every other coordinate, ordered along this one.
  replica_ = world.split(d, in_replica);
  cp_ = world.split((d * st + s) * g + c, in_cp);
  comms_[0] = world.split(in_replica, d);
  comms_[1] = world.split((d * st + s) * r * u + in_cp, c);
  comms_[2] = cp_->split(ui, ri);
  comms_[3] = cp_->split(ri, ui);
  comms_[4] = world.split(d * inner + in_stage, s);
}

std::vector<dist::Communicator*> DeviceMesh::all_comms() const {
  return {comms_[0].get(), comms_[1].get(), comms_[2].get(), comms_[3].get(),
          comms_[4].get(), replica_.get(),  cp_.get()};
}

dist::CommStats DeviceMesh::comm_stats() const {
  dist::CommStats total;
  for (const auto* comm : all_comms()) {
    const auto s = comm->stats();
    total.bytes_sent += s.bytes_sent;
    total.wait_seconds += s.wait_seconds;
  }
  return total;
}

void DeviceMesh::reset_comm_stats() {
  for (auto* comm : all_comms()) comm->reset_stats();
}

}  // namespace paradiff::parallel
