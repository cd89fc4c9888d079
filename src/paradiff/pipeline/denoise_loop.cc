#include "paradiff/pipeline/denoise_loop.h"

#include "paradiff/core/timer.h"
#include "paradiff/kernels/pointwise.h"

namespace paradiff::pipeline {

Tensor TrueClassifierFreeGuidance::combine(const Tensor& conditional,
                                           const Tensor& unconditional) const {
  PARADIFF_CHECK(conditional.shape() == unconditional.shape() &&
                     conditional.dtype() == DType::F32 && unconditional.dtype() == DType::F32,
                 "true CFG combines two F32 predictions of one shape, got ", conditional.describe(),
                 " and ", unconditional.describe());
  // uncond + scale · (cond - uncond), each operation rounded as torch rounds it.
  Tensor out = Tensor::empty(conditional.shape(), DType::F32);
  kernels::scale(unconditional, -1.0f, out);
  kernels::add(conditional, out, out);
  kernels::scale(out, scale_, out);
  kernels::add(unconditional, out, out);
  return out;
}

namespace {
// Both predictions on both ranks of the cfg group: rank 0 computed the conditional one, rank 1
// the unconditional one.
std::pair<Tensor, Tensor> exchange_predictions(dist::Communicator& group, const Tensor& mine) {
  PARADIFF_CHECK(group.size() == 2, "cfg parallel needs a group of 2 ranks, got ", group.size());
  std::vector<int64_t> dims = mine.shape().to_vector();
  dims.insert(dims.begin(), 2);
  Tensor both = Tensor::empty(Shape(dims), mine.dtype());
  const size_t bytes = mine.nbytes();
  group.allgatherv(mine.raw_data(), bytes, both.raw_data(), {bytes, bytes}, {0, bytes});
  return {both.select(0), both.select(1)};
}
}  // namespace

Tensor DenoiseLoop::run(Tensor latents) const {
  PARADIFF_CHECK(scheduler != nullptr && predict, "denoise loop needs a scheduler and a model");
  const bool split_cfg = guidance != nullptr && cfg_group != nullptr && cfg_group->size() > 1;
  Stopwatch clock;
  const int64_t steps = scheduler->num_inference_steps();
  for (int64_t i = 0; i < steps; ++i) {
    const float t = scheduler->transformer_timestep(i, DType::F32);
    Tensor noise;
    if (guidance == nullptr) {
      noise = predict(latents, t, Branch::Conditional);
    } else if (split_cfg) {
      const Branch mine = cfg_group->rank() == 0 ? Branch::Conditional : Branch::Unconditional;
      const auto [conditional, unconditional] =
          exchange_predictions(*cfg_group, predict(latents, t, mine));
      noise = guidance->combine(conditional, unconditional);
    } else {
      const Tensor conditional = predict(latents, t, Branch::Conditional);
      noise = guidance->combine(conditional, predict(latents, t, Branch::Unconditional));
    }
    scheduler->step_inplace(noise, i, latents);
    // A non-finite value would only spread through the remaining steps into a black image.
    PARADIFF_CHECK(kernels::all_finite(latents), "the latents hold a NaN or infinite value after ",
                   "step ", i + 1, " of ", steps, ": stopping (the model's weights or the ",
                   "guidance scales may be out of range; --dtype fp32 may help)");
    if (on_step && !on_step({i + 1, steps, clock.seconds()})) throw GenerationCancelled(i + 1);
  }
  return latents;
}

}  // namespace paradiff::pipeline
