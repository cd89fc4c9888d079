#include "paradiff/parallel/ulysses_exchange.h"

#include <cstring>

namespace paradiff::parallel {

namespace {
// Scratch memory of `bytes` bytes (allocated as f32 so that peak accounting sees it).
Tensor scratch_bytes(size_t bytes) {
  return Tensor::empty({static_cast<int64_t>((bytes + 3) / 4)}, DType::F32);
}
}  // namespace

UlyssesExchange::UlyssesExchange(dist::Communicator& comm, std::vector<int64_t> tokens,
                                 int64_t heads)
    : comm_(comm), tokens_(std::move(tokens)), heads_(heads) {
  const int u = comm_.size();
  PARADIFF_CHECK(static_cast<int>(tokens_.size()) == u, "Ulysses exchange: ", tokens_.size(),
                 " token counts for a group of ", u);
  heads_per_rank_ = (heads_ + u - 1) / u;
  token_offsets_.assign(u, 0);
  for (int j = 0; j < u; ++j) {
    token_offsets_[j] = gathered_;
    gathered_ += tokens_[j];
  }
}

void UlyssesExchange::scatter_heads(const Tensor& q, const Tensor& k, const Tensor& v,
                                    Tensor& q_out, Tensor& k_out, Tensor& v_out) {
  const int u = comm_.size(), me = comm_.rank();
  const int64_t s = q.dim(0), d = q.dim(2), hp = heads_per_rank_;
  PARADIFF_CHECK(s == tokens_[me] && q.dim(1) == heads_, "Ulysses exchange: rank ", me,
                 " expected (", tokens_[me], ", ", heads_, ", D) queries, got ", q.describe());
  const size_t elem = dtype_size(q.dtype());
  const size_t head_bytes = static_cast<size_t>(d) * elem;
  // Send block for rank j: [q, k, v] each (S_me, hp, D), heads j·hp ... (j+1)·hp - 1, zero
  // beyond H.
  std::vector<size_t> send_counts(u), recv_counts(u);
  for (int j = 0; j < u; ++j) {
    send_counts[j] = 3 * static_cast<size_t>(s * hp) * head_bytes;
    recv_counts[j] = 3 * static_cast<size_t>(tokens_[j] * hp) * head_bytes;
  }
  const auto send_offsets = dist::exclusive_offsets(send_counts);
  const auto recv_offsets = dist::exclusive_offsets(recv_counts);
  Tensor send = scratch_bytes(send_offsets.back() + send_counts.back());
  auto* out = static_cast<std::byte*>(send.raw_data());
  const Tensor* src[3] = {&q, &k, &v};
#pragma omp parallel for collapse(2) schedule(static)
  for (int j = 0; j < u; ++j) {
    for (int t = 0; t < 3; ++t) {
      std::byte* block = out + send_offsets[j] + t * static_cast<size_t>(s * hp) * head_bytes;
      const auto* in = static_cast<const std::byte*>(src[t]->raw_data());
      for (int64_t i = 0; i < s; ++i) {
        for (int64_t h = 0; h < hp; ++h) {
          const int64_t head = j * hp + h;
          std::byte* dst = block + static_cast<size_t>(i * hp + h) * head_bytes;
          if (head < heads_) {
            std::memcpy(dst, in + static_cast<size_t>(i * heads_ + head) * head_bytes, head_bytes);
          } else {
            std::memset(dst, 0, head_bytes);
          }
        }
      }
    }
  }
  Tensor recv = scratch_bytes(recv_offsets.back() + recv_counts.back());
  comm_.alltoallv(send.raw_data(), send_counts, send_offsets, recv.raw_data(), recv_counts,
                  recv_offsets);
  // Unpack: rank j's q, k, v land at rows token_offsets_[j] of each output.
  const auto* in = static_cast<const std::byte*>(recv.raw_data());
  Tensor* dst[3] = {&q_out, &k_out, &v_out};
  for (int t = 0; t < 3; ++t) *dst[t] = Tensor::empty({gathered_, hp, d}, q.dtype());
  for (int j = 0; j < u; ++j) {
    const size_t part = static_cast<size_t>(tokens_[j] * hp) * head_bytes;
    for (int t = 0; t < 3; ++t)
      std::memcpy(static_cast<std::byte*>(dst[t]->raw_data()) +
                      static_cast<size_t>(token_offsets_[j] * hp) * head_bytes,
                  in + recv_offsets[j] + t * part, part);
  }
}

void UlyssesExchange::gather_heads(const Tensor& out, Tensor& result) {
  const int u = comm_.size(), me = comm_.rank();
  const int64_t hp = heads_per_rank_, d = out.dim(2), s = tokens_[me];
  PARADIFF_CHECK(out.dim(0) == gathered_ && out.dim(1) == hp, "Ulysses gather: expected (",
                 gathered_, ", ", hp, ", D), got ", out.describe());
  const size_t elem = dtype_size(out.dtype());
  const size_t head_bytes = static_cast<size_t>(d) * elem;
  std::vector<size_t> send_counts(u), recv_counts(u);
  for (int j = 0; j < u; ++j) {
    send_counts[j] = static_cast<size_t>(tokens_[j] * hp) * head_bytes;
    recv_counts[j] = static_cast<size_t>(s * hp) * head_bytes;
  }
  const auto send_offsets = dist::exclusive_offsets(send_counts);  // rows are already in order
  const auto recv_offsets = dist::exclusive_offsets(recv_counts);
  Tensor recv = Tensor::empty(
      {static_cast<int64_t>(recv_offsets.back() + recv_counts.back()) / static_cast<int64_t>(elem)},
      out.dtype());
  comm_.alltoallv(out.raw_data(), send_counts, send_offsets, recv.raw_data(), recv_counts,
                  recv_offsets);
  // Rank j sent our tokens for heads j·hp ...: write them into (S, H, D), dropping pad heads.
  Tensor full = result.dtype() == out.dtype() ? result : Tensor::empty(result.shape(), out.dtype());
  const auto* in = static_cast<const std::byte*>(recv.raw_data());
  auto* dst = static_cast<std::byte*>(full.raw_data());
  for (int j = 0; j < u; ++j) {
    for (int64_t i = 0; i < s; ++i) {
      for (int64_t h = 0; h < hp; ++h) {
        const int64_t head = j * hp + h;
        if (head >= heads_) continue;
        std::memcpy(dst + static_cast<size_t>(i * heads_ + head) * head_bytes,
                    in + recv_offsets[j] + static_cast<size_t>(i * hp + h) * head_bytes,
                    head_bytes);
      }
    }
  }
  if (full.raw_data() != result.raw_data()) result.copy_from(full);
}

}  // namespace paradiff::parallel
