// QwenEmbedRope (scale_rope=True), as positions plus tables: every token gets a (frame, height,
// width) position and its rotary factors are exp(i·position_a·theta^(-2k/d_a)) per axis a, in
// interleaved pairs (2k, 2k+1).
//
// diffusers builds complex tables for positions -4096..4095 once and slices them; a position
// here selects the same row. Image tokens: frame = the image's index in the sample's list,
// height/width centred (y - (h - h/2) for y < h, so the odd extra row goes to the negative side).
// Text token j: max(h/2, w/2) + j on all three axes, j its index in the padded text sequence.
#pragma once

#include <cstdint>
#include <vector>

#include "paradiff/core/tensor.h"
#include "paradiff/models/joint_attention.h"

namespace paradiff::models::qwen_image {

// Rows of diffusers' tables: positions in [-kRopePositions, kRopePositions).
constexpr int64_t kRopePositions = 4096;

// One image of a sample, in packed latent tokens (diffusers' img_shapes entry).
struct QwenImageShape {
  int64_t frame = 1, height = 0, width = 0;
  int64_t tokens() const { return frame * height * width; }
  bool operator==(const QwenImageShape&) const = default;
};

// The positions (sum of tokens, 3) F32 of a sample's images, row-major per image, images in order.
// Throws when a position falls outside diffusers' tables.
Tensor image_positions(const std::vector<QwenImageShape>& shapes);
// Where text positions start: max over the images of max(height / 2, width / 2).
int64_t text_position_start(const std::vector<QwenImageShape>& shapes);
// Positions (n, 3) F32 of the text tokens with these indices in the padded text sequence.
Tensor text_positions(const std::vector<int64_t>& token_indices, int64_t start);

// cos/sin tables for positions (S, 3) and axes_dims (three even widths), computed as diffusers'
// rope_params does in fp32: inv_k = 1 / 10000^(f32(2k / d)), angle = f32(position · inv_k),
// cos and sin of the f32 angle.
RotaryTables qwen_rotary_tables(const Tensor& positions, const std::vector<int64_t>& axes_dims);

}  // namespace paradiff::models::qwen_image
