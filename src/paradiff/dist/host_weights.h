// One copy of the prepared weights per host. Collective over the host communicator
// (host_communicator.h): the host's first rank loads the model with its prepared weights placed
// in a fresh weight arena (an anonymous shared-memory segment, core/weight_arena.h); then the
// other ranks map that segment read-only and load the model too, getting the first rank's memory
// for every prepared weight instead of packing their own. Without sharing every rank fills a
// private arena of the same layout, so that the memory figures of both compare.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "paradiff/core/weight_arena.h"
#include "paradiff/dist/communicator.h"

namespace paradiff::dist {

// --share-weights: Auto shares when several ranks are on one host.
enum class WeightSharing { Auto, On, Off };
// "auto", "on" or "off"; throws naming the value otherwise.
WeightSharing parse_weight_sharing(const std::string& value);

struct HostWeights {
  std::shared_ptr<WeightArena> arena;  // this rank's view (keeps the segment mapped)
  bool shared = false;                 // the host's ranks share one segment
  int64_t weight_bytes = 0;            // the prepared weights of one copy (the segment's size)
};

// Runs `load` on every rank of `host` as described above and returns the arena. If the first rank
// fails to load, the others throw too (naming it) instead of waiting.
HostWeights load_with_host_weights(Communicator& host, WeightSharing sharing,
                                   const std::function<void()>& load);

}  // namespace paradiff::dist
