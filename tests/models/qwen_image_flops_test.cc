// QwenImageTransformerConfig::forward_flops against a count done by hand for diffusers' tiny test
// config, so that `paradiff bench`'s GFLOP figure for Qwen-Image means what FLUX's means.
#include <gtest/gtest.h>

#include "paradiff/models/qwen_image/qwen_image_config.h"

namespace paradiff::models::qwen_image {
namespace {

TEST(QwenImageTransformerConfig, ForwardFlopsMatchAHandCount) {
  QwenImageTransformerConfig c;  // tests/fixtures/qwen_image_transformer/tiny
  c.num_layers = 2;
  c.num_attention_heads = 2;
  c.attention_head_dim = 16;  // inner dim C = 32
  c.in_channels = 16;
  c.joint_attention_dim = 16;
  c.out_channels = 4;  // proj_out: 32 -> 2·2·4 = 16
  c.axes_dims_rope = {8, 4, 4};
  // Batch 2, 16 image + 8 text tokens (S = 24). Multiply-adds of one batch element:
  //   per block, per token: q, k, v, out (4·32·32 = 4096) + MLP 32 -> 128 -> 32 (8192) = 12288;
  //     24 tokens: 294912; attention Q K^T and P V: 2·24·24·32 = 36864; 2 blocks: 663552
  //   img_in 16·16·32 = 8192, txt_in 8·16·32 = 4096, proj_out 16·32·16 = 8192
  const double macs = 663552 + 8192 + 4096 + 8192;
  EXPECT_DOUBLE_EQ(c.forward_flops(2, 16, 8), 2 * 2 * macs);
  EXPECT_DOUBLE_EQ(c.forward_flops(1, 16, 0),
                   2 * (2 * (12288.0 * 16 + 2 * 16 * 16 * 32) + 8192 + 8192));
}

}  // namespace
}  // namespace paradiff::models::qwen_image
