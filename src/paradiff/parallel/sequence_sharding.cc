#include "paradiff/parallel/sequence_sharding.h"

namespace paradiff::parallel {

Shard shard_of(int64_t total, int parts, int index) {
  PARADIFF_CHECK(parts >= 1 && index >= 0 && index < parts, "shard ", index, " of ", parts,
                 " does not exist");
  PARADIFF_CHECK(total >= 0, "cannot shard a negative length ", total);
  const int64_t base = total / parts, extra = total % parts;
  return {index * base + std::min<int64_t>(index, extra), base + (index < extra ? 1 : 0)};
}

std::vector<int64_t> shard_lengths(int64_t total, int parts) {
  std::vector<int64_t> out(parts);
  for (int i = 0; i < parts; ++i) out[i] = shard_of(total, parts, i).length;
  return out;
}

Tensor split_along(const Tensor& t, int dim, int parts, int index) {
  const Shard s = shard_of(t.dim(dim), parts, index);
  return t.narrow(dim, s.start, s.length);
}

Tensor gather_along(dist::Communicator& comm, const Tensor& local, int dim, int64_t total) {
  const int parts = comm.size();
  if (dim < 0) dim += local.ndim();
  const Shard mine = shard_of(total, parts, comm.rank());
  PARADIFF_CHECK(local.dim(dim) == mine.length, "gather: rank ", comm.rank(), " holds ",
                 local.dim(dim), " entries along dim ", dim, ", its shard of ", total, " is ",
                 mine.length);
  // Each rank's part travels as one contiguous block (outer x length x inner) ...
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < dim; ++i) outer *= local.dim(i);
  for (int i = dim + 1; i < local.ndim(); ++i) inner *= local.dim(i);
  const size_t elem = dtype_size(local.dtype());
  std::vector<size_t> counts(parts);
  const auto lengths = shard_lengths(total, parts);
  for (int r = 0; r < parts; ++r)
    counts[r] = static_cast<size_t>(outer * lengths[r] * inner) * elem;
  const auto offsets = dist::exclusive_offsets(counts);
  Shape full = local.shape();
  full[dim] = total;
  Tensor gathered = Tensor::empty(full, local.dtype());
  if (outer == 1) {
    comm.allgatherv(local.raw_data(), local.nbytes(), gathered.raw_data(), counts, offsets);
    return gathered;
  }
  // ... and with outer dims the blocks are interleaved back into place.
  Tensor staging = Tensor::empty({static_cast<int64_t>(full.numel())}, local.dtype());
  comm.allgatherv(local.raw_data(), local.nbytes(), staging.raw_data(), counts, offsets);
  const auto* src = static_cast<const std::byte*>(staging.raw_data());
  auto* dst = static_cast<std::byte*>(gathered.raw_data());
  const size_t out_row = static_cast<size_t>(total * inner) * elem;
  for (int r = 0; r < parts; ++r) {
    const size_t row = static_cast<size_t>(lengths[r] * inner) * elem;
    const size_t col = static_cast<size_t>(shard_of(total, parts, r).start * inner) * elem;
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(dst + o * out_row + col, src + offsets[r] + o * row, row);
  }
  return gathered;
}

}  // namespace paradiff::parallel
