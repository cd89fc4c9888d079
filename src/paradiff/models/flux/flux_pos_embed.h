// FluxPosEmbed: rotary tables from position ids, one frequency band per id axis.
#pragma once

#include <cstdint>
#include <vector>

#include "paradiff/core/tensor.h"
#include "paradiff/models/joint_attention.h"

namespace paradiff::models::flux {

// ids: (S, A) positions (any floating dtype; FLUX passes integers as floats), A == axes.size().
// For axis i with dim d_i: freq_k = theta^(-2k/d_i), angle = pos * freq_k in float64, as
// diffusers computes them; cos/sin are rounded to f32 and concatenated over the axes.
RotaryTables flux_rotary_tables(const Tensor& ids, const std::vector<int64_t>& axes_dims,
                                double theta = 10000.0);

}  // namespace paradiff::models::flux
