// How a sequence of any length is split over W processes: the first S % W ranks take one extra
// token, in every mode. Text and image tokens are each split this way.
#pragma once

#include <cstdint>
#include <vector>

#include "paradiff/core/tensor.h"
#include "paradiff/dist/communicator.h"

namespace paradiff::parallel {

struct Shard {
  int64_t start = 0;
  int64_t length = 0;
};

Shard shard_of(int64_t total, int parts, int index);
std::vector<int64_t> shard_lengths(int64_t total, int parts);

// This rank's shard of `t` along `dim` (a view where possible).
Tensor split_along(const Tensor& t, int dim, int parts, int index);
// The inverse: every rank's shard along `dim`, concatenated in rank order, on every rank.
// `total` is the full length along `dim`.
Tensor gather_along(dist::Communicator& comm, const Tensor& local, int dim, int64_t total);

}  // namespace paradiff::parallel
