#include "paradiff/parallel/ring_attention.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "paradiff/kernels/attention.h"
#include "paradiff/kernels/attention_merge.h"

namespace paradiff::parallel {

namespace {

// Query rows per chunk while a transfer is in flight without a progress thread: each boundary is
// a chance for MPI to progress the rendezvous protocol of large messages. Over TCP a test only
// moves what the socket buffers hold (a few MB, tens of ms at 1 Gbit/s), and the handshake needs
// a test on each side before the bulk starts, so a few chunks per block would leave much of the
// transfer to the final wait (docs/benchmarks.md, "Overlap").
constexpr int64_t kProgressRows = 128;

// Drives requests from a helper thread while the calling thread computes: shared-memory
// transports copy large messages in fragments, and only MPI calls move them along, so without
// this the transfer would mostly happen in the final wait. Stops (and joins) on destruction;
// the calling thread must make no MPI call while it runs.
class ProgressThread {
 public:
  explicit ProgressThread(std::vector<dist::Request*> requests)
      : thread_([this, requests] {
          bool done = false;
          while (!done && !stop_.load(std::memory_order_relaxed)) {
            done = true;
            for (dist::Request* r : requests) done = r->test() && done;
            if (!done) std::this_thread::sleep_for(std::chrono::microseconds(20));
          }
        }) {}
  ~ProgressThread() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// [k; v] of `tokens` rows each, as one buffer that travels in one message.
Tensor pack_kv(const Tensor& k, const Tensor& v) {
  Tensor kv = Tensor::empty({2 * k.dim(0), k.dim(1), k.dim(2)}, k.dtype());
  kv.slice(0, k.dim(0)).copy_from(k);
  kv.slice(k.dim(0), k.dim(0)).copy_from(v);
  return kv;
}

Tensor kv_buffer(int64_t tokens, const Tensor& like) {
  return Tensor::empty({2 * tokens, like.dim(1), like.dim(2)}, like.dtype());
}

Tensor as4(const Tensor& t) {
  return t.reshape({1, t.dim(0), t.dim(1), t.dim(2)});
}

}  // namespace

RingAttention::RingAttention(dist::Communicator& ring, std::vector<int64_t> block_tokens,
                             RotateMethod method, bool convert_to_fp32, RingProgress progress)
    : ring_(ring),
      tokens_(std::move(block_tokens)),
      method_(method),
      convert_to_fp32_(convert_to_fp32),
      progress_thread_(progress == RingProgress::Thread && ring.allows_progress_thread()) {
  PARADIFF_CHECK(static_cast<int>(tokens_.size()) == ring_.size(),
                 "ring attention: ", tokens_.size(), " block sizes for a ring of ", ring_.size());
}

void RingAttention::accumulate(const Tensor& q, const Tensor& kv, int64_t block_len, bool first,
                               Tensor& acc, Tensor& acc_lse,
                               const std::vector<dist::Request*>& in_flight) {
  const int64_t s = q.dim(0), h = q.dim(1), d = q.dim(2);
  const Tensor k = as4(kv.slice(0, block_len)), v = as4(kv.slice(block_len, block_len));
  // Partial results land in the accumulator itself for the first block.
  const DType part_dtype = convert_to_fp32_ ? DType::F32 : q.dtype();
  Tensor part = first && part_dtype == DType::F32 ? acc : Tensor::empty({s, h, d}, part_dtype);
  Tensor part_lse = first ? acc_lse : Tensor::empty({s, h}, DType::F32);
  const int64_t chunks =
      in_flight.empty() ? 1 : std::max<int64_t>(1, (s + kProgressRows - 1) / kProgressRows);
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = s * c / chunks, end = s * (c + 1) / chunks;
    if (end > begin) {
      Tensor out_rows = as4(part.slice(begin, end - begin));
      Tensor lse_rows = part_lse.slice(begin, end - begin).reshape({1, end - begin, h});
      kernels::attention(as4(q.slice(begin, end - begin)), k, v, out_rows, &lse_rows);
    }
    for (dist::Request* r : in_flight) r->test();
  }
  if (part.dtype() != DType::F32) part = part.to(DType::F32);  // rounded, as upstream without fp32
  if (first) {
    if (part.raw_data() != acc.raw_data()) acc.copy_from(part);
    return;
  }
  Tensor acc4 = as4(acc), lse3 = acc_lse.reshape({1, s, h});
  kernels::merge_attention(acc4, lse3, as4(part), part_lse.reshape({1, s, h}));
}

void RingAttention::attend(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out) {
  const int r = ring_.rank(), n = ring_.size();
  const int64_t s = q.dim(0), h = q.dim(1), d = q.dim(2);
  PARADIFF_CHECK(s == tokens_[r], "ring attention: rank ", r, " holds ", s,
                 " tokens, the layout says ", tokens_[r]);
  Tensor acc = Tensor::empty({s, h, d}, DType::F32);
  Tensor acc_lse = Tensor::empty({s, h}, DType::F32);
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  auto block_of = [&](int step) { return ((r - step) % n + n) % n; };

  if (method_ == RotateMethod::AllGather) {
    // Every block at once, then compute them in ring order (local first).
    const size_t row = static_cast<size_t>(h * d) * dtype_size(q.dtype());
    std::vector<size_t> counts(n);
    for (int j = 0; j < n; ++j) counts[j] = static_cast<size_t>(2 * tokens_[j]) * row;
    const auto offsets = dist::exclusive_offsets(counts);
    const Tensor local = pack_kv(k, v);
    int64_t all_tokens = 0;
    for (int64_t t : tokens_) all_tokens += t;
    Tensor all = kv_buffer(all_tokens, q);
    ring_.allgatherv(local.raw_data(), local.nbytes(), all.raw_data(), counts, offsets);
    int64_t row0 = 0;
    std::vector<int64_t> starts(n);
    for (int j = 0; j < n; ++j) starts[j] = row0, row0 += 2 * tokens_[j];
    for (int step = 0; step < n; ++step) {
      const int b = block_of(step);
      accumulate(q, all.slice(starts[b], 2 * tokens_[b]), tokens_[b], step == 0, acc, acc_lse, {});
    }
  } else {
    Tensor current = pack_kv(k, v);
    for (int step = 0; step < n; ++step) {
      const bool more = step + 1 < n;
      Tensor incoming = more ? kv_buffer(tokens_[block_of(step + 1)], q) : Tensor();
      if (method_ == RotateMethod::P2P && more) {
        // Receive first, then send: both in flight while this block computes.
        auto recv = ring_.irecv(incoming.raw_data(), incoming.nbytes(), prev, step);
        auto send = ring_.isend(current.raw_data(), current.nbytes(), next, step);
        if (progress_thread_) {
          ProgressThread progress({recv.get(), send.get()});
          accumulate(q, current, tokens_[block_of(step)], step == 0, acc, acc_lse, {});
        } else {
          accumulate(q, current, tokens_[block_of(step)], step == 0, acc, acc_lse,
                     {recv.get(), send.get()});
        }
        send->wait();
        recv->wait();
      } else {
        accumulate(q, current, tokens_[block_of(step)], step == 0, acc, acc_lse, {});
        if (more)
          ring_.sendrecv(current.raw_data(), current.nbytes(), next, incoming.raw_data(),
                         incoming.nbytes(), prev, step);
      }
      if (more) current = incoming;
    }
  }
  out.copy_from(acc);
}

}  // namespace paradiff::parallel
