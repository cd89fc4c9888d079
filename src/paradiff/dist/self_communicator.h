// A world of one: what a binary started without mpirun gets. Collectives are copies.
#pragma once

#include "paradiff/dist/communicator.h"

namespace paradiff::dist {

class SelfCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::unique_ptr<Communicator> split(int color, int key) const override;
  void barrier() override {}
  void broadcast(void*, size_t, int root) override;
  void allreduce(void*, size_t, ReduceType, ReduceOp) override {}
  void alltoallv(const void* send, const std::vector<size_t>& send_counts,
                 const std::vector<size_t>& send_offsets, void* recv,
                 const std::vector<size_t>& recv_counts,
                 const std::vector<size_t>& recv_offsets) override;
  void allgatherv(const void* send, size_t bytes, void* recv, const std::vector<size_t>& counts,
                  const std::vector<size_t>& offsets) override;
  void sendrecv(const void* send, size_t send_bytes, int dest, void* recv, size_t recv_bytes,
                int source, int tag) override;
  std::unique_ptr<Request> isend(const void* data, size_t bytes, int dest, int tag) override;
  std::unique_ptr<Request> irecv(void* data, size_t bytes, int source, int tag) override;
  [[noreturn]] void abort(const std::string& message, int code) override;
  CommStats stats() const override { return {}; }
  void reset_stats() override {}
};

}  // namespace paradiff::dist
