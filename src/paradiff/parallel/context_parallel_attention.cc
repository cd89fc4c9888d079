#include "paradiff/parallel/context_parallel_attention.h"

#include <optional>

#include "paradiff/kernels/attention.h"
#include "paradiff/parallel/ring_attention.h"
#include "paradiff/parallel/ulysses_exchange.h"

namespace paradiff::parallel {

ContextParallelAttention::ContextParallelAttention(DeviceMesh& mesh) : mesh_(mesh) {}

void ContextParallelAttention::begin_forward(const std::vector<int64_t>& tokens_per_rank) {
  const auto& cfg = mesh_.config();
  PARADIFF_CHECK(static_cast<int>(tokens_per_rank.size()) == cfg.degree(),
                 "context-parallel layout has ", tokens_per_rank.size(),
                 " token counts for a group of ", cfg.degree());
  const int u = cfg.ulysses_degree, r = cfg.ring_degree;
  // Group rank = ring_index · U + ulysses_index.
  ulysses_tokens_.assign(tokens_per_rank.begin() + mesh_.ring_index() * u,
                         tokens_per_rank.begin() + (mesh_.ring_index() + 1) * u);
  ring_tokens_.assign(r, 0);
  for (int i = 0; i < r; ++i)
    for (int j = 0; j < u; ++j) ring_tokens_[i] += tokens_per_rank[i * u + j];
}

void ContextParallelAttention::attend(const Tensor& q, const Tensor& k, const Tensor& v,
                                      Tensor& out) {
  PARADIFF_CHECK(!ring_tokens_.empty(), "context-parallel attention used before begin_forward");
  PARADIFF_CHECK(q.ndim() == 4 && q.dim(0) == 1,
                 "context-parallel attention takes one batch "
                 "element at a time as (1, S, H, D), got ",
                 q.describe());
  const auto& cfg = mesh_.config();
  const Tensor q3 = q.select(0), k3 = k.select(0), v3 = v.select(0);
  Tensor out3 = out.select(0);

  // Ulysses: all tokens of the group for this rank's head group.
  Tensor qg = q3, kg = k3, vg = v3;
  std::optional<UlyssesExchange> ulysses;
  if (cfg.ulysses_degree > 1) {
    ulysses.emplace(mesh_.ulysses(), ulysses_tokens_, q.dim(2));
    ulysses->scatter_heads(q3, k3, v3, qg, kg, vg);
  }
  Tensor og = cfg.ulysses_degree > 1 ? Tensor::empty(qg.shape(), out.dtype()) : out3;
  if (cfg.ring_degree > 1) {
    RingAttention(mesh_.ring(), ring_tokens_, cfg.rotate(), cfg.convert_to_fp32)
        .attend(qg, kg, vg, og);
  } else {
    auto reshape4 = [](const Tensor& t) { return t.reshape({1, t.dim(0), t.dim(1), t.dim(2)}); };
    Tensor og4 = reshape4(og);
    kernels::attention(reshape4(qg), reshape4(kg), reshape4(vg), og4);
  }
  if (ulysses) ulysses->gather_heads(og, out3);
}

}  // namespace paradiff::parallel
