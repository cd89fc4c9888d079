#include "paradiff/dist/communicator.h"

namespace paradiff::dist {

std::vector<size_t> exclusive_offsets(const std::vector<size_t>& counts) {
  std::vector<size_t> offsets(counts.size(), 0);
  for (size_t i = 1; i < counts.size(); ++i) offsets[i] = offsets[i - 1] + counts[i - 1];
  return offsets;
}

}  // namespace paradiff::dist
