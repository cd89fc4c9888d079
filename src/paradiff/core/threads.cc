#include "paradiff/core/threads.h"

#include <omp.h>

#include "paradiff/core/error.h"

namespace paradiff {

void set_num_threads(int n) {
  PARADIFF_CHECK(n >= 1, "thread count must be at least 1, got ", n);
  omp_set_num_threads(n);
}

int num_threads() {
  return omp_get_max_threads();
}

}  // namespace paradiff
