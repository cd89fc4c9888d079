// FLUX's rotary tables against a double-precision reference of get_1d_rotary_pos_embed.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "paradiff/kernels/rope.h"
#include "testing/test_util.h"

namespace paradiff::kernels {
namespace {

using testing::max_abs_error;

TEST(RopeTables, MatchDoubleReference) {
  const std::vector<int64_t> axes{4, 6, 6};
  const int64_t s = 37, d = 16;
  Tensor pos = Tensor::empty({s, 3}, DType::F32);
  for (int64_t i = 0; i < s * 3; ++i) pos.data<float>()[i] = static_cast<float>((i * 7) % 23);
  Tensor cos = Tensor::empty({s, d}, DType::F32), sin = Tensor::empty({s, d}, DType::F32);
  rope_tables(pos, axes, 10000.0, cos, sin);
  std::vector<double> want_cos(s * d), want_sin(s * d);
  for (int64_t r = 0; r < s; ++r) {
    int64_t col = 0;
    for (int64_t a = 0; a < 3; ++a) {
      for (int64_t k = 0; k < axes[a] / 2; ++k, col += 2) {
        const double angle = pos.data<float>()[r * 3 + a] * std::pow(10000.0, -2.0 * k / axes[a]);
        want_cos[r * d + col] = want_cos[r * d + col + 1] = std::cos(angle);
        want_sin[r * d + col] = want_sin[r * d + col + 1] = std::sin(angle);
      }
    }
  }
  // f32 rounding of values in [-1, 1].
  EXPECT_LE(max_abs_error(cos, want_cos), 1e-7);
  EXPECT_LE(max_abs_error(sin, want_sin), 1e-7);
  Tensor wrong = Tensor::empty({s, d + 2}, DType::F32);
  EXPECT_THROW(rope_tables(pos, axes, 10000.0, wrong, sin), Error);
  EXPECT_THROW(rope_tables(pos, {4, 6}, 10000.0, cos, sin), Error);
}

}  // namespace
}  // namespace paradiff::kernels
