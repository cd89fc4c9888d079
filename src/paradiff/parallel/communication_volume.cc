#include "paradiff/parallel/communication_volume.h"

#include "paradiff/core/error.h"

namespace paradiff::parallel {

int64_t attention_sent_bytes(const ContextParallelConfig& config, int group_rank,
                             const std::vector<int64_t>& tokens_per_rank, int64_t heads,
                             int64_t head_dim, int64_t element_bytes) {
  const int u = config.ulysses_degree, r = config.ring_degree;
  PARADIFF_CHECK(static_cast<int>(tokens_per_rank.size()) == u * r, tokens_per_rank.size(),
                 " token counts for a group of ", u * r);
  const int ring_index = group_rank / u;
  int64_t sent = 0;
  int64_t heads_here = heads;
  if (u > 1) {
    const int64_t hp = (heads + u - 1) / u;
    int64_t group_tokens = 0;
    for (int j = 0; j < u; ++j) group_tokens += tokens_per_rank[ring_index * u + j];
    const int64_t mine = tokens_per_rank[group_rank];
    sent += 3 * mine * hp * head_dim * element_bytes * (u - 1);     // scatter heads
    sent += (group_tokens - mine) * hp * head_dim * element_bytes;  // gather heads
    heads_here = hp;
  }
  if (r > 1) {
    std::vector<int64_t> ring_tokens(r, 0);
    for (int i = 0; i < r; ++i)
      for (int j = 0; j < u; ++j) ring_tokens[i] += tokens_per_rank[i * u + j];
    const int64_t row = heads_here * head_dim * element_bytes;
    if (config.rotate() == RotateMethod::AllGather) {
      sent += 2 * ring_tokens[ring_index] * row * (r - 1);
    } else {
      // Step s sends the block received s steps ago: ring rank (ring_index - s) mod R's.
      for (int step = 0; step + 1 < r; ++step)
        sent += 2 * ring_tokens[((ring_index - step) % r + r) % r] * row;
    }
  }
  return sent;
}

int64_t gather_sent_bytes(int64_t local_bytes, int parts) {
  return local_bytes * (parts - 1);
}

}  // namespace paradiff::parallel
