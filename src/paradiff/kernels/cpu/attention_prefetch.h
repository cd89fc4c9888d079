// The attention tiles' prefetch of the next K/V block (attention_tile_avx512.h,
// attention_tile_avx2.cc): each register-tile step of a block brings its share of the next
// block's data into L2 while the current block sits in L1. Internal linkage: every tile variant
// keeps its own copy, compiled for its own level.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace paradiff::kernels::attention_detail {
namespace {

// Prefetches slice `part` of `parts` equal slices of [p, p + bytes) into L2.
inline __attribute__((always_inline)) void prefetch_slice_l2(const void* p, size_t bytes,
                                                             int64_t part, int64_t parts) {
  const auto lines = static_cast<int64_t>((bytes + 63) / 64);
  const int64_t first = lines * part / parts, last = lines * (part + 1) / parts;
  for (int64_t l = first; l < last; ++l)
    _mm_prefetch(static_cast<const char*>(p) + l * 64, _MM_HINT_T1);
}

}  // namespace
}  // namespace paradiff::kernels::attention_detail
