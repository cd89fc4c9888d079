// A model's context-parallel plan, as data: which inputs are split along which dim, and which
// outputs are gathered. One generic mechanism applies any plan; models hold no if-statements
// about parallelism.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "paradiff/core/tensor.h"
#include "paradiff/dist/communicator.h"

namespace paradiff::parallel {

using NamedTensors = std::map<std::string, Tensor>;

struct ContextParallelPlan {
  struct Split {
    std::string input;
    int dim;
    // True for inputs whose tokens join the attention sequence (FLUX: text and image hidden
    // states); their local lengths add up to each rank's joint sequence.
    bool attention_tokens = false;
  };
  struct Gather {
    std::string output;
    int dim;
    std::string length_of;  // the input whose full length along its split dim this output has
  };
  std::vector<Split> split_inputs;  // inputs not listed are replicated
  std::vector<Gather> gather_outputs;
};

// This rank's inputs: every input the plan names split along its dim (shard `index` of `parts`),
// the rest as they are. Undefined (absent optional) inputs stay undefined.
NamedTensors apply_split(const ContextParallelPlan& plan, const NamedTensors& inputs, int parts,
                         int index);
// The full outputs on every rank: each output the plan names gathered along its dim, given the
// full lengths (`totals`, by output name).
NamedTensors apply_gather(const ContextParallelPlan& plan, dist::Communicator& comm,
                          const NamedTensors& outputs,
                          const std::map<std::string, int64_t>& totals);

}  // namespace paradiff::parallel
