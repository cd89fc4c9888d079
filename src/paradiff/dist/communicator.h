// Communicator: the interface through which processes exchange tensors. Every entry point takes
// its communicator explicitly; there is no global rank state. Implementations: MPI (a group of
// processes under mpirun) and Self (a world of one, for a binary started without mpirun).
//
// Buffers are raw bytes with explicit counts so that the same calls move f32, bf16 or i64 data.
// Every implementation counts the bytes it sends and the time it spends waiting, the figures the
// parallel benchmark reports.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace paradiff::dist {

// A non-blocking send or receive in flight.
class Request {
 public:
  virtual ~Request() = default;
  // Blocks until the operation completed (time spent here counts as waiting).
  virtual void wait() = 0;
  // True once the operation completed; also lets the transport make progress.
  virtual bool test() = 0;
};

enum class ReduceOp { Sum, Max, Min };
enum class ReduceType { F32, F64, I64 };

struct CommStats {
  int64_t bytes_sent = 0;     // payload bytes this rank handed to the transport
  double wait_seconds = 0.0;  // time blocked in collectives and waits
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Ranks with the same color form a new communicator, ordered by key (then by old rank).
  virtual std::unique_ptr<Communicator> split(int color, int key) const = 0;

  virtual void barrier() = 0;
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  virtual void allreduce(void* data, size_t count, ReduceType type, ReduceOp op) = 0;
  // Uneven all-to-all: send_counts[j] bytes from send + send_offsets[j] go to rank j;
  // recv_counts[j] bytes from rank j land at recv + recv_offsets[j].
  virtual void alltoallv(const void* send, const std::vector<size_t>& send_counts,
                         const std::vector<size_t>& send_offsets, void* recv,
                         const std::vector<size_t>& recv_counts,
                         const std::vector<size_t>& recv_offsets) = 0;
  // Uneven all-gather: each rank contributes `bytes`; rank j's part lands at recv + offsets[j]
  // with counts[j] bytes.
  virtual void allgatherv(const void* send, size_t bytes, void* recv,
                          const std::vector<size_t>& counts,
                          const std::vector<size_t>& offsets) = 0;
  // Non-blocking even all-gather: each rank contributes `bytes`; rank j's part lands at
  // recv + j * bytes once the request completes. Every rank must start it in the same order
  // as its other collectives on this communicator and wait for it. By default it runs
  // blocking (allgatherv) and returns a completed request.
  virtual std::unique_ptr<Request> iallgather(const void* send, size_t bytes, void* recv);
  // Blocking exchange: send to `dest` and receive from `source` at once (deadlock-free ring shift).
  virtual void sendrecv(const void* send, size_t send_bytes, int dest, void* recv,
                        size_t recv_bytes, int source, int tag) = 0;
  virtual std::unique_ptr<Request> isend(const void* data, size_t bytes, int dest, int tag) = 0;
  virtual std::unique_ptr<Request> irecv(void* data, size_t bytes, int source, int tag) = 0;

  // Ends every process of the job at once; never returns. Prints "paradiff: rank R failed:
  // <message>" (a world of one: "paradiff: aborting: <message>") on stderr first.
  [[noreturn]] virtual void abort(const std::string& message, int code) = 0;

  // True when a helper thread may drive requests (test/wait) while the calling thread computes,
  // one thread in MPI at a time (MPI_THREAD_SERIALIZED or better).
  virtual bool allows_progress_thread() const { return false; }

  // Counters for this communicator (not its parent or children).
  virtual CommStats stats() const = 0;
  virtual void reset_stats() = 0;
};

// Offsets of consecutive parts: {0, c0, c0 + c1, ...}.
std::vector<size_t> exclusive_offsets(const std::vector<size_t>& counts);

}  // namespace paradiff::dist
