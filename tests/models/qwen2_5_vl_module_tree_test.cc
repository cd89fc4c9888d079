// Qwen2_5_VLForConditionalGeneration's module tree from a checkpoint's headers (older names) is
// the one transformers 5 builds (the meta model, vision tower and lm_head included,
// tests/fixtures/placement/models/tiny_qwen_image_text_encoder.json), so the placements computed
// from it are accelerate's golden maps.
#include <gtest/gtest.h>

#include "paradiff/models/qwen2_5_vl/qwen2_5_vl_module_tree.h"
#include "paradiff/parallel/placement/model_device_map.h"
#include "parallel/placement_test_util.h"
#include "testing/test_util.h"

namespace paradiff::models::qwen2_5_vl {
namespace {

using parallel::testing::placement_model;

parallel::ModuleTree tiny_tree() {
  return qwen2_5_vl_module_tree(
      paradiff::testing::source_path("tests/fixtures/qwen_image_pipeline/tiny/text_encoder"));
}

TEST(Qwen2_5_VLModuleTree, FromHeadersIsTransformersMetaModel) {
  parallel::testing::expect_same_module_tree(tiny_tree(),
                                             placement_model("tiny_qwen_image_text_encoder"));
}

// Every golden case of the tiny Qwen2.5-VL, placed from the tree the engine builds.
TEST(Qwen2_5_VLModuleTree, PlacesAsAccelerateDoes) {
  const int checked =
      parallel::testing::expect_golden_maps(tiny_tree(), "tiny_qwen_image_text_encoder");
  EXPECT_GE(checked, 6);
}

}  // namespace
}  // namespace paradiff::models::qwen2_5_vl
