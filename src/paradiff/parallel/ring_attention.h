// Ring attention over one communicator: every rank keeps its queries and visits every rank's
// K/V block in turn (its own first), merging the partial (out, log-sum-exp) pairs in the stable
// sigmoid form. Three ways to move the blocks (RotateMethod): allgather once, a blocking ring
// shift per step, or p2p — the next block's non-blocking receive (and the current block's send)
// in flight while the current block computes, double-buffered, with MPI progressed by a helper
// thread (or, where MPI allows no such thread, between query chunks) so the transfer really
// overlaps.
#pragma once

#include <vector>

#include "paradiff/core/tensor.h"
#include "paradiff/dist/communicator.h"
#include "paradiff/parallel/parallel_config.h"

namespace paradiff::parallel {

class RingAttention {
 public:
  // block_tokens: every ring rank's token count (rank order).
  // progress: how p2p transfers advance while a block computes (a helper thread where the
  // communicator allows one, else MPI_Test calls between query chunks).
  RingAttention(dist::Communicator& ring, std::vector<int64_t> block_tokens, RotateMethod method,
                bool convert_to_fp32, RingProgress progress = RingProgress::Thread);

  // q, k, v: (S_r, h, D) alike (F32 or BF16) for this rank; out: (S_r, h, D), F32 or BF16.
  void attend(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out);

 private:
  // Partial attention of q over one K/V block (packed [k; v] rows), merged into the running
  // (out, lse) — or written there directly for the first block. `progress` runs between query
  // chunks.
  void accumulate(const Tensor& q, const Tensor& kv, int64_t block_len, bool first, Tensor& acc,
                  Tensor& acc_lse, const std::vector<dist::Request*>& in_flight);

  dist::Communicator& ring_;
  std::vector<int64_t> tokens_;
  RotateMethod method_;
  bool convert_to_fp32_;
  bool progress_thread_;  // p2p: drive transfers from a helper thread while computing
};

}  // namespace paradiff::parallel
