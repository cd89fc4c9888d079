// ContextParallelConfig and ParallelConfig with diffusers' fields and names, validated before any
// collective runs, each failure a message with the numbers.
#pragma once

#include <optional>
#include <string>

namespace paradiff::parallel {

// How ring attention moves K/V between ring ranks.
enum class RotateMethod {
  AllGather,  // gather every rank's K/V once per attention call (upstream's way; W x memory)
  AllToAll,   // a blocking ring shift per step (no overlap)
  P2P,        // non-blocking send/receive of the next block while the current one computes
};

RotateMethod parse_rotate_method(const std::string& name);
const char* rotate_method_name(RotateMethod method);

struct ContextParallelConfig {
  int ring_degree = 1;
  int ulysses_degree = 1;
  // Ring: merge partial outputs and log-sum-exp in fp32 (otherwise partial outputs are rounded
  // to the compute dtype before each merge, as upstream does without it).
  bool convert_to_fp32 = true;
  std::string rotate_method = "p2p";

  int degree() const { return ring_degree * ulysses_degree; }
  RotateMethod rotate() const { return parse_rotate_method(rotate_method); }
  // Upstream's checks, in upstream's order, then ours: the degrees' product must divide the world
  // (the world is split into data-parallel groups of that many ranks).
  void validate(int world_size) const;
  std::string describe() const;  // "ulysses 2", "ring 4 (p2p)", "unified 2x2 (p2p)"
};

struct ParallelConfig {
  std::optional<ContextParallelConfig> context_parallel_config;
};

}  // namespace paradiff::parallel
