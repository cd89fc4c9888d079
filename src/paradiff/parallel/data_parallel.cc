#include "paradiff/parallel/data_parallel.h"

#include <algorithm>

#include "paradiff/core/error.h"

namespace paradiff::parallel {

int64_t real_items(int64_t count, int processes, int index) {
  PARADIFF_CHECK(processes >= 1 && index >= 0 && index < processes, "process ", index, " of ",
                 processes, " does not exist");
  PARADIFF_CHECK(count >= 0, "cannot split a negative number of items (", count, ")");
  const int64_t q = count / processes, r = count % processes;
  return q + (index < r ? 1 : 0);
}

std::vector<int64_t> split_between_processes(int64_t count, int processes, int index,
                                             bool apply_padding) {
  const int64_t length = real_items(count, processes, index);
  const int64_t q = count / processes, r = count % processes;
  const int64_t start = index * q + std::min<int64_t>(index, r);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < length; ++i) out.push_back(start + i);
  if (apply_padding && count > 0) {
    const int64_t target = q + (r > 0 ? 1 : 0);
    // Padded with the last input item (not the slice's last), as accelerate does.
    while (static_cast<int64_t>(out.size()) < target) out.push_back(count - 1);
  }
  return out;
}

}  // namespace paradiff::parallel
