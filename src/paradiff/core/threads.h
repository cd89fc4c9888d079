// Kernel thread count (OpenMP; oneDNN shares the same OpenMP runtime).
#pragma once

namespace paradiff {

// Sets the number of threads kernels use; n < 1 is an error.
void set_num_threads(int n);
int num_threads();

}  // namespace paradiff
