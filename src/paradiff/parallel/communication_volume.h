// How many bytes a rank must send, in theory, for the collectives of a context-parallel forward,
// computed from the algorithms' definitions (not by running them), so that a run's counted
// bytes can be checked against it: a run that moved less did not really split the work, one
// that moved more wastes the link.
#pragma once

#include <cstdint>
#include <vector>

#include "paradiff/parallel/parallel_config.h"

namespace paradiff::parallel {

// One attention call of the rank at `group_rank` (= ring_index · U + ulysses_index) in a
// context-parallel group run by `config`, given every group rank's local token count, the
// model's heads and head dim, and the bytes of one q/k/v element (the compute dtype):
// - Ulysses: q, k and v of this rank's tokens for every other rank's head group
//   (3 · S_r · ceil(H/U) · D each), then the output of every other rank's tokens for this
//   rank's head group;
// - ring, on the Ulysses-gathered sequence: allgather sends this rank's [k; v] to R - 1 ranks;
//   alltoall and p2p pass R - 1 blocks on, each block [k; v] of the ring rank it came from.
int64_t attention_sent_bytes(const ContextParallelConfig& config, int group_rank,
                             const std::vector<int64_t>& tokens_per_rank, int64_t heads,
                             int64_t head_dim, int64_t element_bytes);

// An all-gather of a tensor split across `parts` ranks: the local part goes to every other rank.
int64_t gather_sent_bytes(int64_t local_bytes, int parts);

}  // namespace paradiff::parallel
