// Transformer blocks whose prepared weights are not all resident at once
// (dist/sharded_block_weights.h shards them across ranks and gathers each block just before it
// runs). Two seams, both on the loading thread, so that models need not know who holds their
// weights:
// - WeightBlockScope: a model marks the block whose weights it is binding; a WeightStore reads
//   current_weight_block() in place() to put them with that block.
// - BlockWeightsScope: installs the hook the model keeps (current_block_weights() at the end of
//   its construction) and calls before running each block.
#pragma once

#include <memory>

namespace paradiff {

class BlockWeights {
 public:
  virtual ~BlockWeights() = default;
  // Called by the model before it runs block `block` (numbered as it was marked at load time).
  // When this returns, the block's prepared weights are in place; they stay so until
  // before_block is called for another block that shares its buffer (never the next one).
  virtual void before_block(int block) = 0;
};

// The block whose weights are being bound on this thread, or -1 (none: embedders, head).
int current_weight_block();

class WeightBlockScope {
 public:
  explicit WeightBlockScope(int block);
  ~WeightBlockScope();
  WeightBlockScope(const WeightBlockScope&) = delete;
  WeightBlockScope& operator=(const WeightBlockScope&) = delete;

 private:
  int previous_;
};

// The hook installed on this thread, or null (every block's weights are always resident).
std::shared_ptr<BlockWeights> current_block_weights();

class BlockWeightsScope {
 public:
  explicit BlockWeightsScope(std::shared_ptr<BlockWeights> hook);
  ~BlockWeightsScope();
  BlockWeightsScope(const BlockWeightsScope&) = delete;
  BlockWeightsScope& operator=(const BlockWeightsScope&) = delete;

 private:
  std::shared_ptr<BlockWeights> previous_;
};

}  // namespace paradiff
