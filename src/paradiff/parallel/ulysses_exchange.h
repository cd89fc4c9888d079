// The Ulysses all-to-all (DeepSpeed-Ulysses): scatter heads, gather sequence. A rank holding
// (S_r, H, D) for its own tokens ends up with (sum_j S_j, H_pad / U, D): every token of the
// group for its head group, in source-rank order; the reverse exchange undoes it. Head counts not
// divisible by U are padded with zero heads (their outputs are dropped on the way back).
#pragma once

#include <vector>

#include "paradiff/core/tensor.h"
#include "paradiff/dist/communicator.h"

namespace paradiff::parallel {

class UlyssesExchange {
 public:
  // tokens: every rank's token count in `comm` (rank order); heads: H of the model.
  UlyssesExchange(dist::Communicator& comm, std::vector<int64_t> tokens, int64_t heads);

  int64_t heads_per_rank() const { return heads_per_rank_; }
  int64_t gathered_tokens() const { return gathered_; }

  // q, k, v: (S_r, H, D) alike -> (S_group, H_pad / U, D) each, in one all-to-all.
  void scatter_heads(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& q_out,
                     Tensor& k_out, Tensor& v_out);
  // out: (S_group, H_pad / U, D) -> result (S_r, H, D) (dtype of `result`).
  void gather_heads(const Tensor& out, Tensor& result);

 private:
  dist::Communicator& comm_;
  std::vector<int64_t> tokens_;
  int64_t heads_, heads_per_rank_, gathered_ = 0;
  std::vector<int64_t> token_offsets_;
};

}  // namespace paradiff::parallel
