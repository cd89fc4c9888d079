// AutoencoderKLQwenImage's module tree from a checkpoint's headers is the one diffusers builds
// (the meta model, tests/fixtures/placement/models/tiny_qwen_image_vae.json: encoder, quant_conv,
// post_quant_conv, decoder with its mid block before its up blocks; no no-split modules), so the
// placements computed from it are accelerate's golden maps (infer_auto_device_map with the
// class's empty no-split list, fp32 and bf16, 2 and 3 ranks, disk spills).
#include <gtest/gtest.h>

#include "paradiff/models/vae_qwen_image/qwen_image_vae_module_tree.h"
#include "paradiff/parallel/placement/model_device_map.h"
#include "parallel/placement_test_util.h"
#include "testing/test_util.h"

namespace paradiff::models::vae_qwen_image {
namespace {

using parallel::testing::placement_model;

parallel::ModuleTree tiny_tree() {
  return autoencoder_kl_qwen_image_module_tree(
      paradiff::testing::source_path("tests/fixtures/qwen_image_pipeline/tiny/vae"));
}

TEST(QwenImageVaeModuleTree, FromHeadersIsDiffusersMetaModel) {
  parallel::testing::expect_same_module_tree(tiny_tree(), placement_model("tiny_qwen_image_vae"));
}

// Every golden case of the tiny Qwen-Image VAE, placed from the tree the engine builds.
TEST(QwenImageVaeModuleTree, PlacesAsAccelerateDoes) {
  const int checked =
      parallel::testing::expect_golden_maps(tiny_tree(), "tiny_qwen_image_vae", /*bytes=*/true);
  EXPECT_EQ(checked, 6);
}

}  // namespace
}  // namespace paradiff::models::vae_qwen_image
