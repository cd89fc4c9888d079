// The generic context-parallel wrapper any model reuses: split the inputs by the model's plan,
// run the model's own forward on this rank's share with the per-forward layout in a
// ForwardContext, and gather the outputs the plan names. Models hold no code about parallelism
// beyond declaring their plan.
#pragma once

#include <functional>

#include "paradiff/dist/communicator.h"
#include "paradiff/parallel/context_parallel_plan.h"
#include "paradiff/parallel/forward_context.h"

namespace paradiff::parallel {

using LocalForward = std::function<NamedTensors(const NamedTensors&, const ForwardContext&)>;

// Every rank's joint attention-sequence length under `plan` over `parts` ranks.
std::vector<int64_t> attention_tokens_per_rank(const ContextParallelPlan& plan,
                                               const NamedTensors& inputs, int parts);

// Collective over `group` (every rank passes the same full inputs); returns the full outputs on
// every rank. A group of one runs `local_forward` on the inputs as they are.
NamedTensors context_parallel_forward(const ContextParallelPlan& plan, dist::Communicator& group,
                                      const NamedTensors& inputs,
                                      const LocalForward& local_forward);

}  // namespace paradiff::parallel
