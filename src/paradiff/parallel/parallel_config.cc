#include "paradiff/parallel/parallel_config.h"

#include "paradiff/core/error.h"

namespace paradiff::parallel {

RotateMethod parse_rotate_method(const std::string& name) {
  if (name == "allgather") return RotateMethod::AllGather;
  if (name == "alltoall") return RotateMethod::AllToAll;
  if (name == "p2p") return RotateMethod::P2P;
  throw Error(str_cat("rotate_method must be one of allgather, alltoall, p2p; got '", name, "'"));
}

const char* rotate_method_name(RotateMethod method) {
  switch (method) {
    case RotateMethod::AllGather:
      return "allgather";
    case RotateMethod::AllToAll:
      return "alltoall";
    case RotateMethod::P2P:
      return "p2p";
  }
  return "?";
}

RingProgress parse_ring_progress(const std::string& name) {
  if (name == "thread") return RingProgress::Thread;
  if (name == "test") return RingProgress::Test;
  throw Error(str_cat("ring progress must be thread or test; got '", name, "'"));
}

const char* ring_progress_name(RingProgress progress) {
  return progress == RingProgress::Thread ? "thread" : "test";
}

void ContextParallelConfig::validate(int world_size) const {
  PARADIFF_CHECK(ring_degree > 1 || ulysses_degree > 1,
                 "context parallelism needs ring_degree or ulysses_degree > 1 (got ring_degree=",
                 ring_degree, ", ulysses_degree=", ulysses_degree, ")");
  PARADIFF_CHECK(ring_degree >= 1, "ring_degree must be >= 1, got ", ring_degree);
  PARADIFF_CHECK(ulysses_degree >= 1, "ulysses_degree must be >= 1, got ", ulysses_degree);
  parse_rotate_method(rotate_method);
  PARADIFF_CHECK(degree() <= world_size, "ring_degree x ulysses_degree = ", ring_degree, " x ",
                 ulysses_degree, " = ", degree(), " exceeds the world size (", world_size,
                 " processes)");
  PARADIFF_CHECK(world_size % degree() == 0, "the world size (", world_size,
                 " processes) is not a multiple of ring_degree x ulysses_degree = ", degree(),
                 ": the world is split into data-parallel groups of that many processes");
}

std::string ContextParallelConfig::describe() const {
  if (ring_degree == 1) return str_cat("ulysses ", ulysses_degree);
  if (ulysses_degree == 1) return str_cat("ring ", ring_degree, " (", rotate_method, ")");
  return str_cat("unified ", ring_degree, "x", ulysses_degree, " (", rotate_method, ")");
}

void ParallelConfig::validate(int world_size) const {
  PARADIFF_CHECK(world_size >= 1, "the world needs at least one process, got ", world_size);
  if (context_parallel_config) context_parallel_config->validate(world_size);
  PARADIFF_CHECK(cfg_degree == 1 || cfg_degree == 2,
                 "cfg_degree must be 1 or 2 (the conditional and unconditional predictions), got ",
                 cfg_degree);
  PARADIFF_CHECK(stage_degree >= 1, "stage_degree must be >= 1, got ", stage_degree);
  const std::string stage = stage_degree > 1 ? str_cat("stage_degree x ") : "";
  const std::string stage_value = stage_degree > 1 ? str_cat(stage_degree, " x ") : "";
  PARADIFF_CHECK(world_size % replica_degree() == 0, "the world size (", world_size,
                 " processes) is not a multiple of ", stage, "cfg_degree x ring_degree x ",
                 "ulysses_degree = ", stage_value, cfg_degree, " x ", ring_degree(), " x ",
                 ulysses_degree(), " = ", replica_degree(),
                 ": the world is split into data-parallel replicas of that many processes");
}

std::string ParallelConfig::describe() const {
  std::string out;
  if (stage_degree > 1) out = str_cat(stage_degree, " placement stages");
  if (cfg_degree > 1) out += str_cat(out.empty() ? "" : " x ", "cfg ", cfg_degree);
  if (context_parallel_config)
    out += str_cat(out.empty() ? "" : " x ", context_parallel_config->describe());
  return out.empty() ? "one rank per replica" : out;
}

}  // namespace paradiff::parallel
