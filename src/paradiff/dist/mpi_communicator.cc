#include "paradiff/dist/mpi_communicator.h"

#include <climits>
#include <cstdio>

#include "paradiff/core/error.h"
#include "paradiff/core/timer.h"

namespace paradiff::dist {

namespace {

// MPI counts are int: larger messages would need derived types, which no layer here needs yet.
int to_count(size_t bytes, const char* what) {
  PARADIFF_CHECK(bytes <= static_cast<size_t>(INT_MAX), what, ": message of ", bytes,
                 " bytes exceeds MPI's int count limit");
  return static_cast<int>(bytes);
}

std::vector<int> to_counts(const std::vector<size_t>& v, const char* what) {
  std::vector<int> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = to_count(v[i], what);
  return out;
}

// Adds the time of the enclosing scope to the wait counter.
class WaitTimer {
 public:
  explicit WaitTimer(CommStats& stats) : stats_(stats) {}
  ~WaitTimer() { stats_.wait_seconds += sw_.seconds(); }

 private:
  CommStats& stats_;
  Stopwatch sw_;
};

class MpiRequest : public Request {
 public:
  MpiRequest(MPI_Request request, std::shared_ptr<CommStats> stats)
      : request_(request), stats_(std::move(stats)) {}
  ~MpiRequest() override {
    if (request_ != MPI_REQUEST_NULL) {
      // Destroyed without completion (an exception unwound past it): cancel, do not leak.
      MPI_Cancel(&request_);
      MPI_Request_free(&request_);
    }
  }
  void wait() override {
    WaitTimer timer(*stats_);
    check_mpi(MPI_Wait(&request_, MPI_STATUS_IGNORE), "MPI_Wait");
  }
  bool test() override {
    int done = 0;
    check_mpi(MPI_Test(&request_, &done, MPI_STATUS_IGNORE), "MPI_Test");
    return done != 0;
  }

 private:
  MPI_Request request_;
  std::shared_ptr<CommStats> stats_;
};

// A non-blocking collective: it cannot be cancelled, so one destroyed before completion (an
// exception unwound past it) is completed first; its peers started it too.
class MpiCollectiveRequest : public Request {
 public:
  MpiCollectiveRequest(MPI_Request request, std::shared_ptr<CommStats> stats)
      : request_(request), stats_(std::move(stats)) {}
  ~MpiCollectiveRequest() override {
    if (request_ != MPI_REQUEST_NULL) MPI_Wait(&request_, MPI_STATUS_IGNORE);
  }
  void wait() override {
    WaitTimer timer(*stats_);
    check_mpi(MPI_Wait(&request_, MPI_STATUS_IGNORE), "MPI_Wait (all-gather)");
  }
  bool test() override {
    int done = 0;
    check_mpi(MPI_Test(&request_, &done, MPI_STATUS_IGNORE), "MPI_Test (all-gather)");
    return done != 0;
  }

 private:
  MPI_Request request_;
  std::shared_ptr<CommStats> stats_;
};

MPI_Datatype mpi_type(ReduceType type) {
  switch (type) {
    case ReduceType::F32:
      return MPI_FLOAT;
    case ReduceType::F64:
      return MPI_DOUBLE;
    case ReduceType::I64:
      return MPI_INT64_T;
  }
  return MPI_DATATYPE_NULL;
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return MPI_SUM;
    case ReduceOp::Max:
      return MPI_MAX;
    case ReduceOp::Min:
      return MPI_MIN;
  }
  return MPI_OP_NULL;
}

}  // namespace

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Error(str_cat(what, " failed: ", std::string(text, length)));
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm) : comm_(comm) {
  check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_WORLD && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

bool MpiCommunicator::allows_progress_thread() const {
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  return level >= MPI_THREAD_SERIALIZED;
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) const {
  MPI_Comm child;
  check_mpi(MPI_Comm_split(comm_, color, key, &child), "MPI_Comm_split");
  return std::make_unique<MpiCommunicator>(child);
}

void MpiCommunicator::barrier() {
  WaitTimer timer(*stats_);
  check_mpi(MPI_Barrier(comm_), "MPI_Barrier");
}

void MpiCommunicator::broadcast(void* data, size_t bytes, int root) {
  WaitTimer timer(*stats_);
  if (rank_ == root) stats_->bytes_sent += static_cast<int64_t>(bytes) * (size_ - 1);
  check_mpi(MPI_Bcast(data, to_count(bytes, "broadcast"), MPI_BYTE, root, comm_), "MPI_Bcast");
}

void MpiCommunicator::allreduce(void* data, size_t count, ReduceType type, ReduceOp op) {
  WaitTimer timer(*stats_);
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, to_count(count, "allreduce"), mpi_type(type),
                          mpi_op(op), comm_),
            "MPI_Allreduce");
}

void MpiCommunicator::alltoallv(const void* send, const std::vector<size_t>& send_counts,
                                const std::vector<size_t>& send_offsets, void* recv,
                                const std::vector<size_t>& recv_counts,
                                const std::vector<size_t>& recv_offsets) {
  const size_t n = static_cast<size_t>(size_);
  PARADIFF_CHECK(send_counts.size() == n && send_offsets.size() == n && recv_counts.size() == n &&
                     recv_offsets.size() == n,
                 "alltoallv needs one count and offset per rank (", n, ")");
  for (size_t j = 0; j < n; ++j)
    if (static_cast<int>(j) != rank_) stats_->bytes_sent += static_cast<int64_t>(send_counts[j]);
  WaitTimer timer(*stats_);
  check_mpi(MPI_Alltoallv(send, to_counts(send_counts, "alltoallv").data(),
                          to_counts(send_offsets, "alltoallv").data(), MPI_BYTE, recv,
                          to_counts(recv_counts, "alltoallv").data(),
                          to_counts(recv_offsets, "alltoallv").data(), MPI_BYTE, comm_),
            "MPI_Alltoallv");
}

void MpiCommunicator::allgatherv(const void* send, size_t bytes, void* recv,
                                 const std::vector<size_t>& counts,
                                 const std::vector<size_t>& offsets) {
  PARADIFF_CHECK(counts.size() == static_cast<size_t>(size_) && offsets.size() == counts.size(),
                 "allgatherv needs one count and offset per rank (", size_, ")");
  PARADIFF_CHECK(counts[rank_] == bytes, "allgatherv: rank ", rank_, " sends ", bytes,
                 " bytes but its count says ", counts[rank_]);
  stats_->bytes_sent += static_cast<int64_t>(bytes) * (size_ - 1);
  WaitTimer timer(*stats_);
  check_mpi(MPI_Allgatherv(send, to_count(bytes, "allgatherv"), MPI_BYTE, recv,
                           to_counts(counts, "allgatherv").data(),
                           to_counts(offsets, "allgatherv").data(), MPI_BYTE, comm_),
            "MPI_Allgatherv");
}

std::unique_ptr<Request> MpiCommunicator::iallgather(const void* send, size_t bytes, void* recv) {
  const int count = to_count(bytes, "iallgather");
  stats_->bytes_sent += static_cast<int64_t>(bytes) * (size_ - 1);
  MPI_Request request;
  check_mpi(MPI_Iallgather(send, count, MPI_BYTE, recv, count, MPI_BYTE, comm_, &request),
            "MPI_Iallgather");
  return std::make_unique<MpiCollectiveRequest>(request, stats_);
}

void MpiCommunicator::sendrecv(const void* send, size_t send_bytes, int dest, void* recv,
                               size_t recv_bytes, int source, int tag) {
  stats_->bytes_sent += static_cast<int64_t>(send_bytes);
  WaitTimer timer(*stats_);
  check_mpi(MPI_Sendrecv(send, to_count(send_bytes, "sendrecv"), MPI_BYTE, dest, tag, recv,
                         to_count(recv_bytes, "sendrecv"), MPI_BYTE, source, tag, comm_,
                         MPI_STATUS_IGNORE),
            "MPI_Sendrecv");
}

std::unique_ptr<Request> MpiCommunicator::isend(const void* data, size_t bytes, int dest, int tag) {
  MPI_Request request;
  stats_->bytes_sent += static_cast<int64_t>(bytes);
  check_mpi(MPI_Isend(data, to_count(bytes, "isend"), MPI_BYTE, dest, tag, comm_, &request),
            "MPI_Isend");
  return std::make_unique<MpiRequest>(request, stats_);
}

std::unique_ptr<Request> MpiCommunicator::irecv(void* data, size_t bytes, int source, int tag) {
  MPI_Request request;
  check_mpi(MPI_Irecv(data, to_count(bytes, "irecv"), MPI_BYTE, source, tag, comm_, &request),
            "MPI_Irecv");
  return std::make_unique<MpiRequest>(request, stats_);
}

void MpiCommunicator::abort(const std::string& message, int code) {
  // One line naming the rank and the reason; scripts/paradiff-run keeps the first such line and
  // drops what OpenMPI prints after it.
  std::fprintf(stderr, "paradiff: rank %d failed: %s\n", rank_, message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; this only satisfies [[noreturn]]
}

}  // namespace paradiff::dist
