// The one denoising loop every pipeline shares: at each step the scheduler's timestep goes to
// the model (one prediction, or two under true classifier-free guidance, combined by a
// Guidance), the scheduler steps the latents, and a callback hears of the progress and may
// cancel. With a cfg group of two ranks, each computes one of the two predictions and they
// exchange them, so both ranks combine the same pair and step identically.
#pragma once

#include <cstdint>
#include <functional>

#include "paradiff/core/error.h"
#include "paradiff/core/tensor.h"
#include "paradiff/dist/communicator.h"
#include "paradiff/pipeline/flow_match_euler_scheduler.h"

namespace paradiff::pipeline {

enum class Branch { Conditional, Unconditional };

struct StepProgress {
  int64_t step = 0;   // steps done
  int64_t steps = 0;  // of this many
  double elapsed_seconds = 0;
};

// Called after every step; returning false cancels the loop (GenerationCancelled is thrown).
using StepCallback = std::function<bool(const StepProgress&)>;

class GenerationCancelled : public Error {
 public:
  explicit GenerationCancelled(int64_t step)
      : Error(str_cat("generation cancelled after step ", step)) {}
};

// The model's noise prediction at one step for one branch, from the current latents and the
// timestep the scheduler gives the model.
using PredictFn = std::function<Tensor(const Tensor& latents, float timestep, Branch branch)>;

// How the conditional and unconditional predictions combine.
class Guidance {
 public:
  virtual ~Guidance() = default;
  virtual Tensor combine(const Tensor& conditional, const Tensor& unconditional) const = 0;
};

// diffusers' true CFG: uncond + scale · (cond - uncond), computed in fp32.
class TrueClassifierFreeGuidance : public Guidance {
 public:
  explicit TrueClassifierFreeGuidance(float scale) : scale_(scale) {}
  Tensor combine(const Tensor& conditional, const Tensor& unconditional) const override;

 private:
  float scale_;
};

struct DenoiseLoop {
  FlowMatchEulerDiscreteScheduler* scheduler = nullptr;  // timesteps already set
  PredictFn predict;
  const Guidance* guidance = nullptr;  // null: one (conditional) prediction per step
  // Two ranks that split the two predictions (cfg parallel); null: this rank computes both.
  dist::Communicator* cfg_group = nullptr;
  StepCallback on_step;

  // Runs every step on `latents` in place and returns them; stops with an error naming the step
  // when the latents turn non-finite.
  Tensor run(Tensor latents) const;
};

}  // namespace paradiff::pipeline
