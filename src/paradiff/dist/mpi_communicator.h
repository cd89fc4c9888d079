// Communicator over MPI (OpenMPI from Debian). MPI errors become paradiff::Error with MPI's own
// message: every communicator uses MPI_ERRORS_RETURN and every call's status is checked.
#pragma once

#include <mpi.h>

#include "paradiff/dist/communicator.h"

namespace paradiff::dist {

class MpiCommunicator : public Communicator {
 public:
  // Takes ownership of `comm` (freed on destruction unless it is MPI_COMM_WORLD).
  explicit MpiCommunicator(MPI_Comm comm);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::unique_ptr<Communicator> split(int color, int key) const override;
  void barrier() override;
  void broadcast(void* data, size_t bytes, int root) override;
  void allreduce(void* data, size_t count, ReduceType type, ReduceOp op) override;
  void alltoallv(const void* send, const std::vector<size_t>& send_counts,
                 const std::vector<size_t>& send_offsets, void* recv,
                 const std::vector<size_t>& recv_counts,
                 const std::vector<size_t>& recv_offsets) override;
  void allgatherv(const void* send, size_t bytes, void* recv, const std::vector<size_t>& counts,
                  const std::vector<size_t>& offsets) override;
  std::unique_ptr<Request> iallgather(const void* send, size_t bytes, void* recv) override;
  void sendrecv(const void* send, size_t send_bytes, int dest, void* recv, size_t recv_bytes,
                int source, int tag) override;
  std::unique_ptr<Request> isend(const void* data, size_t bytes, int dest, int tag) override;
  std::unique_ptr<Request> irecv(void* data, size_t bytes, int source, int tag) override;
  [[noreturn]] void abort(const std::string& message, int code) override;
  bool allows_progress_thread() const override;
  CommStats stats() const override { return *stats_; }
  void reset_stats() override { *stats_ = {}; }

  MPI_Comm handle() const { return comm_; }

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::shared_ptr<CommStats> stats_ = std::make_shared<CommStats>();
};

// Throws paradiff::Error("<what>: <MPI's error string>") unless code is MPI_SUCCESS.
void check_mpi(int code, const char* what);

}  // namespace paradiff::dist
