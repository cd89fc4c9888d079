// A standalone oneDNN matmul, outside Linear: the rate that the benchmarks measure Linear and
// attention against, in the same run.
#pragma once

#include <cstdint>
#include <functional>

#include "paradiff/core/dtype.h"

namespace paradiff::kernels::cpu {

// A function that runs (M x K) * (K x N) -> f32 once, operands in `dtype` (zeros), weights in
// oneDNN's preferred (prepacked) layout, with the OpenMP thread count current at each call.
std::function<void()> onednn_reference_matmul(int64_t m, int64_t k, int64_t n, DType dtype);

}  // namespace paradiff::kernels::cpu
