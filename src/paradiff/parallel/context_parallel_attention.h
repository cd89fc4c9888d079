// Attention across the context-parallel group, as one backend for all three modes: a Ulysses
// all-to-all inside the Ulysses group (skipped when U = 1), ring attention over the ring group
// on what that gathered (local attention when R = 1), and the reverse all-to-all. Ulysses is
// unified with R = 1; ring is unified with U = 1; any token counts work in every mode.
#pragma once

#include "paradiff/parallel/attention_backend.h"
#include "paradiff/parallel/device_mesh.h"

namespace paradiff::parallel {

class ContextParallelAttention : public AttentionBackend {
 public:
  explicit ContextParallelAttention(DeviceMesh& mesh);
  std::string name() const override { return mesh_.context_parallel_config().describe(); }
  void attend(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
              const ForwardContext& forward) override;

 private:
  DeviceMesh& mesh_;
};

}  // namespace paradiff::parallel
