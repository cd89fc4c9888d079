#include "paradiff/parallel/context_parallel_plan.h"

#include "paradiff/parallel/sequence_sharding.h"

namespace paradiff::parallel {

NamedTensors apply_split(const ContextParallelPlan& plan, const NamedTensors& inputs, int parts,
                         int index) {
  NamedTensors out = inputs;
  for (const auto& split : plan.split_inputs) {
    auto it = out.find(split.input);
    if (it == out.end() || !it->second.defined()) continue;
    PARADIFF_CHECK(split.dim < it->second.ndim(), "context-parallel plan splits '", split.input,
                   "' along dim ", split.dim, ", but it is ", it->second.describe());
    it->second = split_along(it->second, split.dim, parts, index);
  }
  return out;
}

NamedTensors apply_gather(const ContextParallelPlan& plan, dist::Communicator& comm,
                          const NamedTensors& outputs,
                          const std::map<std::string, int64_t>& totals) {
  NamedTensors out = outputs;
  for (const auto& gather : plan.gather_outputs) {
    auto it = out.find(gather.output);
    PARADIFF_CHECK(it != out.end(), "context-parallel plan gathers '", gather.output,
                   "', which the model did not produce");
    auto total = totals.find(gather.output);
    PARADIFF_CHECK(total != totals.end(), "no full length given for '", gather.output, "'");
    it->second = gather_along(comm, it->second, gather.dim, total->second);
  }
  return out;
}

}  // namespace paradiff::parallel
