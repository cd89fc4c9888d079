// The execution of a model-level placement whose units form one chain (a VAE decoder): each
// owner of a run of consecutive units computes them in order and hands the activations on to
// the next run's owner; "disk" units are run by rank 0, bound from the checkpoint just before
// they run (read ahead while the unit before computes) and freed after. Shared by the placed
// decoders of AutoencoderKL and AutoencoderKLQwenImage: only how a unit is built and run differs.
#pragma once

#include <functional>

#include "paradiff/models/module_loader.h"
#include "paradiff/models/unit_placement.h"

namespace paradiff::models {

struct UnitChainSteps {
  // Unit `unit`, bound on this rank, applied to h.
  std::function<Tensor(size_t unit, Tensor h)> run_bound;
  // Unit `unit` built from `loader` (its tensors only, read from disk), applied to h.
  std::function<Tensor(size_t unit, ModuleLoader& loader, Tensor h)> run_streamed;
};

// Collective over the placement's group: every rank passes the same `input` (the first unit's)
// and returns the last unit's output, broadcast from its owner, bit for bit what one process
// running the units in order computes. `disk` holds the "disk" units' tensors (F32 compute);
// `tag` marks the activations' messages.
Tensor run_unit_chain(const UnitPlacement& placement, const WeightSource& disk,
                      const UnitChainSteps& steps, const Tensor& input, int tag);

}  // namespace paradiff::models
