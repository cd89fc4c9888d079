// T5EncoderModel's module tree from a checkpoint's headers is the one transformers builds (the
// meta model after tie_weights, tests/fixtures/placement/models/tiny_text_encoder_2_tied.json),
// so the placements computed from it are accelerate's golden maps.
#include <gtest/gtest.h>

#include "paradiff/models/t5/t5_module_tree.h"
#include "paradiff/parallel/placement/model_device_map.h"
#include "parallel/placement_test_util.h"
#include "testing/test_util.h"

namespace paradiff::models::t5 {
namespace {

using parallel::testing::placement_model;

parallel::ModuleTree tiny_tree() {
  return t5_encoder_module_tree(
      paradiff::testing::source_path("tests/fixtures/flux_pipeline/tiny/text_encoder_2"));
}

TEST(T5ModuleTree, FromHeadersIsTransformersTiedMetaModel) {
  parallel::testing::expect_same_module_tree(tiny_tree(),
                                             placement_model("tiny_text_encoder_2_tied"));
}

// Every golden case of the tied tiny T5, placed from the tree the engine builds.
TEST(T5ModuleTree, PlacesAsAccelerateDoes) {
  const int checked =
      parallel::testing::expect_golden_maps(tiny_tree(), "tiny_text_encoder_2_tied");
  EXPECT_GE(checked, 7);
}

}  // namespace
}  // namespace paradiff::models::t5
