// Per-forward state of a context-parallel forward, passed down to attention with every call
// rather than stored on the model or the backend, so one model (and one backend) can serve
// forwards of different shapes, from several callers, without hidden order dependencies.
#pragma once

#include <cstdint>
#include <vector>

namespace paradiff::parallel {

struct ForwardContext {
  // Every rank's local joint-sequence length in the context-parallel group, group-rank order.
  // Empty for a forward that is not split.
  std::vector<int64_t> tokens_per_rank;
};

}  // namespace paradiff::parallel
