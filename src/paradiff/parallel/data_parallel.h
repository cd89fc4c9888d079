// Data parallelism: items (prompts) split between processes with accelerate's
// split_between_processes semantics.
#pragma once

#include <cstdint>
#include <vector>

namespace paradiff::parallel {

// The indices of `count` items that process `index` of `processes` takes: the contiguous slice
// starting at index·q + min(index, r) of length q + (index < r), where q, r = divmod(count,
// processes). With apply_padding, a short slice is padded with the index of the last input
// item up to q + (r > 0), so every process runs the same number of items (the caller drops the
// results of padding: see real_items). A process past the end gets an empty slice.
std::vector<int64_t> split_between_processes(int64_t count, int processes, int index,
                                             bool apply_padding = false);

// How many of a process's split indices are real items (the rest are padding).
int64_t real_items(int64_t count, int processes, int index);

}  // namespace paradiff::parallel
