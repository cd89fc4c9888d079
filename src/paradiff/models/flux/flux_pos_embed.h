// FluxPosEmbed: rotary tables from position ids, one frequency band per id axis.
#pragma once

#include <cstdint>
#include <vector>

#include "paradiff/core/tensor.h"

namespace paradiff::models::flux {

struct RotaryTables {
  Tensor cos;  // (S, head_dim) F32, each value repeated for the pair (2k, 2k+1)
  Tensor sin;
  // Rows [start, start + length): the tables of a sub-sequence, as views.
  RotaryTables rows(int64_t start, int64_t length) const {
    return {cos.slice(start, length), sin.slice(start, length)};
  }
};

// ids: (S, A) positions (any floating dtype; FLUX passes integers as floats), A == axes.size().
// For axis i with dim d_i: freq_k = theta^(-2k/d_i), angle = pos * freq_k in float64, as
// diffusers computes them; cos/sin are rounded to f32 and concatenated over the axes.
RotaryTables flux_rotary_tables(const Tensor& ids, const std::vector<int64_t>& axes_dims,
                                double theta = 10000.0);

}  // namespace paradiff::models::flux
