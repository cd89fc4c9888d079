#include "paradiff/models/unit_chain.h"

#include "paradiff/dist/tensor_broadcast.h"
#include "paradiff/dist/tensor_transfer.h"

namespace paradiff::models {

Tensor run_unit_chain(const UnitPlacement& placement, const WeightSource& disk,
                      const UnitChainSteps& steps, const Tensor& input, int tag) {
  const auto& assignment = placement.assignment();
  dist::Communicator& group = placement.group();
  const int rank = group.rank();
  const std::vector<parallel::Stage> chain = hidden_state_chain(assignment, 0);
  UnitStreamer streamer(assignment, rank, 0, disk, DType::F32);

  Tensor h, out;
  for (size_t k = 0; k < chain.size(); ++k) {
    const parallel::Stage& stage = chain[k];
    if (stage.rank != rank) continue;
    h = k == 0 ? input : dist::receive_tensor(group, chain[k - 1].rank, tag);
    for (size_t u = stage.first; u < stage.first + stage.count; ++u) {
      if (assignment.on_disk(u)) {
        ModuleLoader loader(streamer.next(u), DType::F32);
        h = steps.run_streamed(u, loader, std::move(h));
      } else {
        h = steps.run_bound(u, std::move(h));
      }
    }
    if (k + 1 < chain.size())
      dist::send_tensor(group, h, chain[k + 1].rank, tag);
    else
      out = std::move(h);
  }
  dist::broadcast_tensor(group, out, chain.back().rank);
  return out;
}

}  // namespace paradiff::models
