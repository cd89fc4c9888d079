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

// How the ring's point-to-point transfers are driven while a block computes (p2p only): a helper
// thread calling MPI_Test (needs MPI_THREAD_SERIALIZED), or the computing thread itself between
// query chunks. Thread falls back to Test where the communicator allows no helper thread.
enum class RingProgress { Thread, Test };

RingProgress parse_ring_progress(const std::string& name);
const char* ring_progress_name(RingProgress progress);

// diffusers' ParallelConfig plus our extension: the world is a mesh
// data x cfg x ring x ulysses (innermost last), where data = world / (cfg x ring x ulysses)
// replicas share the prompts, cfg = 2 ranks groups compute the conditional and unconditional
// predictions of true classifier-free guidance side by side, and ring x ulysses is context
// parallelism. Every degree may be 1: with no context_parallel_config and cfg_degree 1 the world
// is `world` replicas of one rank each (pure data parallelism).
struct ParallelConfig {
  std::optional<ContextParallelConfig> context_parallel_config;
  int cfg_degree = 1;
  // Model-level placement: the ranks among which a device_map deals the transformer's layers
  // (paradiff's extension; 1 = no placement). The mesh is then data x stage x cfg x ring x
  // ulysses.
  int stage_degree = 1;
  RingProgress ring_progress = RingProgress::Thread;

  int ring_degree() const {
    return context_parallel_config ? context_parallel_config->ring_degree : 1;
  }
  int ulysses_degree() const {
    return context_parallel_config ? context_parallel_config->ulysses_degree : 1;
  }
  // Ranks that make one image together: stage x cfg x ring x ulysses.
  int replica_degree() const {
    return stage_degree * cfg_degree * ring_degree() * ulysses_degree();
  }
  // The context-parallel config's own checks (upstream's), then ours: cfg_degree is 1 or 2, and
  // the replica degree divides the world.
  void validate(int world_size) const;
  // "ulysses 2", "cfg 2 x ring 2 (p2p)", "one rank per replica"
  std::string describe() const;
};

}  // namespace paradiff::parallel
