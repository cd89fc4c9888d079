#include "paradiff/models/qwen_image/qwen_image_pos_embed.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "paradiff/core/error.h"

namespace paradiff::models::qwen_image {

namespace {
void check_in_table(int64_t lo, int64_t hi, const char* axis, const QwenImageShape& s) {
  PARADIFF_CHECK(lo >= -kRopePositions && hi < kRopePositions, "img_shapes entry (", s.frame, ", ",
                 s.height, ", ", s.width, ") needs ", axis, " positions ", lo, "..", hi,
                 ", beyond the rotary table's range [", -kRopePositions, ", ", kRopePositions, ")");
}
}  // namespace

Tensor image_positions(const std::vector<QwenImageShape>& shapes) {
  int64_t total = 0;
  for (const auto& s : shapes) total += s.tokens();
  Tensor pos = Tensor::empty({total, 3}, DType::F32);
  float* p = pos.data<float>();
  int64_t row = 0;
  for (int64_t idx = 0; idx < static_cast<int64_t>(shapes.size()); ++idx) {
    const auto& s = shapes[idx];
    const int64_t y0 = s.height - s.height / 2, x0 = s.width - s.width / 2;
    check_in_table(idx, idx + s.frame - 1, "frame", s);
    check_in_table(-y0, s.height / 2 - 1, "height", s);
    check_in_table(-x0, s.width / 2 - 1, "width", s);
    for (int64_t f = 0; f < s.frame; ++f)
      for (int64_t y = 0; y < s.height; ++y)
        for (int64_t x = 0; x < s.width; ++x, ++row) {
          p[row * 3 + 0] = static_cast<float>(idx + f);
          p[row * 3 + 1] = static_cast<float>(y - y0);
          p[row * 3 + 2] = static_cast<float>(x - x0);
        }
  }
  return pos;
}

int64_t text_position_start(const std::vector<QwenImageShape>& shapes) {
  int64_t start = 0;
  for (const auto& s : shapes) start = std::max({start, s.height / 2, s.width / 2});
  return start;
}

Tensor text_positions(const std::vector<int64_t>& token_indices, int64_t start) {
  const auto n = static_cast<int64_t>(token_indices.size());
  Tensor pos = Tensor::empty({n, 3}, DType::F32);
  float* p = pos.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t position = start + token_indices[i];
    PARADIFF_CHECK(position < kRopePositions, "text token ", token_indices[i],
                   " would take rotary position ", position, " (text starts at ", start,
                   "), beyond the table's ", kRopePositions, " positions");
    p[i * 3] = p[i * 3 + 1] = p[i * 3 + 2] = static_cast<float>(position);
  }
  return pos;
}

RotaryTables qwen_rotary_tables(const Tensor& positions, const std::vector<int64_t>& axes_dims) {
  PARADIFF_CHECK(positions.ndim() == 2 && positions.dim(1) == 3 && axes_dims.size() == 3,
                 "rotary positions must be (S, 3) for three axes, got ", positions.describe());
  const int64_t s = positions.dim(0);
  const int64_t d = std::accumulate(axes_dims.begin(), axes_dims.end(), int64_t{0});
  RotaryTables t{Tensor::empty({s, d}, DType::F32), Tensor::empty({s, d}, DType::F32)};
  // Inverse frequencies per column pair, each step in f32 as torch computes them.
  std::vector<float> inv;
  std::vector<int> axis_of;
  for (int a = 0; a < 3; ++a)
    for (int64_t k = 0; k < axes_dims[a] / 2; ++k) {
      const float exponent = static_cast<float>(2 * k) / static_cast<float>(axes_dims[a]);
      inv.push_back(1.0f / std::pow(10000.0f, exponent));
      axis_of.push_back(a);
    }
  const Tensor pos = positions.dtype() == DType::F32 ? positions : positions.to(DType::F32);
  const float* p = pos.data<float>();
  float* c = t.cos.data<float>();
  float* sn = t.sin.data<float>();
  for (int64_t row = 0; row < s; ++row)
    for (size_t k = 0; k < inv.size(); ++k) {
      const float angle = p[row * 3 + axis_of[k]] * inv[k];
      const int64_t col = row * d + 2 * static_cast<int64_t>(k);
      c[col] = c[col + 1] = std::cos(angle);
      sn[col] = sn[col + 1] = std::sin(angle);
    }
  return t;
}

}  // namespace paradiff::models::qwen_image
