// The one dispatch point through which models run attention. Models hand it q, k, v in
// (B, S, H, D) for their local tokens; the backend decides how: locally, or split across
// processes (Ulysses, ring, unified) when context parallelism is enabled.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "paradiff/core/tensor.h"
#include "paradiff/parallel/forward_context.h"

namespace paradiff::parallel {

class AttentionBackend {
 public:
  virtual ~AttentionBackend() = default;
  virtual std::string name() const = 0;
  // Non-causal attention with scale 1/sqrt(D). q, k, v: (B, S, H, D), F32 or BF16 alike; out:
  // preallocated (B, S, H, D), F32 or BF16. `forward` says how the sequence is split across the
  // context-parallel group (local attention ignores it).
  virtual void attend(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                      const ForwardContext& forward) = 0;
};

// Single-process attention: the fused kernel on the whole sequence.
class LocalAttention : public AttentionBackend {
 public:
  std::string name() const override { return "local"; }
  void attend(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
              const ForwardContext& forward) override;
};

std::shared_ptr<AttentionBackend> make_local_attention();

}  // namespace paradiff::parallel
