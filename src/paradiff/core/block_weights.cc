#include "paradiff/core/block_weights.h"

#include <utility>

namespace paradiff {

namespace {
thread_local int t_block = -1;
thread_local std::shared_ptr<BlockWeights> t_hook;
}  // namespace

int current_weight_block() {
  return t_block;
}

WeightBlockScope::WeightBlockScope(int block) : previous_(t_block) {
  t_block = block;
}

WeightBlockScope::~WeightBlockScope() {
  t_block = previous_;
}

std::shared_ptr<BlockWeights> current_block_weights() {
  return t_hook;
}

BlockWeightsScope::BlockWeightsScope(std::shared_ptr<BlockWeights> hook)
    : previous_(std::exchange(t_hook, std::move(hook))) {}

BlockWeightsScope::~BlockWeightsScope() {
  t_hook = std::move(previous_);
}

}  // namespace paradiff
