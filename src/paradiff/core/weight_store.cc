#include "paradiff/core/weight_store.h"

#include <cstring>

namespace paradiff {

namespace {
thread_local WeightStore* t_store = nullptr;

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}
}  // namespace

WeightStore* current_weight_store() {
  return t_store;
}

WeightStoreScope::WeightStoreScope(WeightStore* store) : previous_(t_store) {
  t_store = store;
}

WeightStoreScope::~WeightStoreScope() {
  t_store = previous_;
}

uint64_t weight_digest(const void* data, size_t bytes, uint64_t seed) {
  // Four independent lanes over 8-byte words (fast enough to run over every weight at load
  // time), then the tail and the length.
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t lane[4] = {seed ^ 0x9e3779b97f4a7c15ull, seed + 1, seed + 2, seed + 3};
  size_t i = 0;
  for (; i + 32 <= bytes; i += 32) {
    for (int k = 0; k < 4; ++k) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * k, 8);
      lane[k] = (lane[k] ^ w) * 0x100000001b3ull + (lane[k] >> 29);
    }
  }
  uint64_t h = mix(lane[0]) ^ mix(lane[1] + 1) ^ mix(lane[2] + 2) ^ mix(lane[3] + 3);
  for (; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return mix(h ^ bytes);
}

}  // namespace paradiff
