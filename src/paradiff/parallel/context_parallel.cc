#include "paradiff/parallel/context_parallel.h"

#include "paradiff/parallel/sequence_sharding.h"

namespace paradiff::parallel {

namespace {
const Tensor& input_of(const NamedTensors& inputs, const std::string& name) {
  const auto it = inputs.find(name);
  PARADIFF_CHECK(it != inputs.end() && it->second.defined(), "context-parallel plan needs input '",
                 name, "', which the forward did not get");
  return it->second;
}

int split_dim_of(const ContextParallelPlan& plan, const std::string& input) {
  for (const auto& split : plan.split_inputs)
    if (split.input == input) return split.dim;
  throw Error(str_cat("context-parallel plan: '", input, "' is not a split input"));
}
}  // namespace

std::vector<int64_t> attention_tokens_per_rank(const ContextParallelPlan& plan,
                                               const NamedTensors& inputs, int parts) {
  std::vector<int64_t> tokens(parts, 0);
  for (const auto& split : plan.split_inputs) {
    if (!split.attention_tokens) continue;
    const Tensor& t = input_of(inputs, split.input);
    PARADIFF_CHECK(split.dim < t.ndim(), "context-parallel plan splits '", split.input,
                   "' along dim ", split.dim, ", but it is ", t.describe());
    for (int j = 0; j < parts; ++j) tokens[j] += shard_of(t.dim(split.dim), parts, j).length;
  }
  return tokens;
}

NamedTensors context_parallel_forward(const ContextParallelPlan& plan, dist::Communicator& group,
                                      const NamedTensors& inputs,
                                      const LocalForward& local_forward) {
  const int parts = group.size();
  if (parts == 1) return local_forward(inputs, ForwardContext{});
  const ForwardContext context{attention_tokens_per_rank(plan, inputs, parts)};
  const NamedTensors local = apply_split(plan, inputs, parts, group.rank());
  std::map<std::string, int64_t> totals;
  for (const auto& gather : plan.gather_outputs) {
    const Tensor& full = input_of(inputs, gather.length_of);
    totals[gather.output] = full.dim(split_dim_of(plan, gather.length_of));
  }
  return apply_gather(plan, group, local_forward(local, context), totals);
}

}  // namespace paradiff::parallel
