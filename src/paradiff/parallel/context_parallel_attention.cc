#include "paradiff/parallel/context_parallel_attention.h"

#include <optional>

#include "paradiff/kernels/attention.h"
#include "paradiff/parallel/ring_attention.h"
#include "paradiff/parallel/ulysses_exchange.h"

namespace paradiff::parallel {

ContextParallelAttention::ContextParallelAttention(DeviceMesh& mesh) : mesh_(mesh) {}

void ContextParallelAttention::attend(const Tensor& q, const Tensor& k, const Tensor& v,
                                      Tensor& out, const ForwardContext& forward) {
  const auto& cfg = mesh_.context_parallel_config();
  const auto& tokens = forward.tokens_per_rank;
  PARADIFF_CHECK(static_cast<int>(tokens.size()) == cfg.degree(),
                 "context-parallel attention: the forward gives ", tokens.size(),
                 " token counts for a group of ", cfg.degree());
  const int u = cfg.ulysses_degree, r = cfg.ring_degree;
  // Group rank = ring_index · U + ulysses_index.
  const std::vector<int64_t> ulysses_tokens(tokens.begin() + mesh_.ring_index() * u,
                                            tokens.begin() + (mesh_.ring_index() + 1) * u);
  std::vector<int64_t> ring_tokens(r, 0);
  for (int i = 0; i < r; ++i)
    for (int j = 0; j < u; ++j) ring_tokens[i] += tokens[i * u + j];
  PARADIFF_CHECK(q.ndim() == 4 && q.dim(0) == 1,
                 "context-parallel attention takes one batch "
                 "element at a time as (1, S, H, D), got ",
                 q.describe());
  const Tensor q3 = q.select(0), k3 = k.select(0), v3 = v.select(0);
  Tensor out3 = out.select(0);

  // Ulysses: all tokens of the group for this rank's head group.
  Tensor qg = q3, kg = k3, vg = v3;
  std::optional<UlyssesExchange> ulysses;
  if (cfg.ulysses_degree > 1) {
    ulysses.emplace(mesh_.ulysses(), ulysses_tokens, q.dim(2));
    ulysses->scatter_heads(q3, k3, v3, qg, kg, vg);
  }
  Tensor og = cfg.ulysses_degree > 1 ? Tensor::empty(qg.shape(), out.dtype()) : out3;
  if (cfg.ring_degree > 1) {
    RingAttention(mesh_.ring(), ring_tokens, cfg.rotate(), cfg.convert_to_fp32,
                  mesh_.config().ring_progress)
        .attend(qg, kg, vg, og);
  } else {
    auto reshape4 = [](const Tensor& t) { return t.reshape({1, t.dim(0), t.dim(1), t.dim(2)}); };
    Tensor og4 = reshape4(og);
    kernels::attention(reshape4(qg), reshape4(kg), reshape4(vg), og4);
  }
  if (ulysses) ulysses->gather_heads(og, out3);
}

}  // namespace paradiff::parallel
