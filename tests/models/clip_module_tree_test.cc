// CLIPTextModel's module tree from a checkpoint's headers is the one transformers 5 builds (the
// meta model, tests/fixtures/placement/models/tiny_text_encoder.json: position_ids included, the
// checkpoint's "text_model." prefix dropped), so the placements computed from it are accelerate's
// golden maps.
#include <gtest/gtest.h>

#include "paradiff/models/clip/clip_module_tree.h"
#include "paradiff/parallel/placement/model_device_map.h"
#include "parallel/placement_test_util.h"
#include "testing/test_util.h"

namespace paradiff::models::clip {
namespace {

using parallel::testing::placement_model;

parallel::ModuleTree tiny_tree() {
  return clip_text_module_tree(
      paradiff::testing::source_path("tests/fixtures/flux_pipeline/tiny/text_encoder"));
}

TEST(ClipModuleTree, FromHeadersIsTransformersMetaModel) {
  parallel::testing::expect_same_module_tree(tiny_tree(), placement_model("tiny_text_encoder"));
}

// Every golden case of the tiny CLIP, placed from the tree the engine builds.
TEST(ClipModuleTree, PlacesAsAccelerateDoes) {
  const int checked = parallel::testing::expect_golden_maps(tiny_tree(), "tiny_text_encoder");
  EXPECT_GE(checked, 4);
}

}  // namespace
}  // namespace paradiff::models::clip
