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
  const parallel::ModuleTree got = tiny_tree();
  const parallel::ModuleTree& want = placement_model("tiny_qwen_image_vae");
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const auto& g = got.node(static_cast<int>(i));
    const auto& w = want.node(static_cast<int>(i));
    EXPECT_EQ(g.name, w.name);
    EXPECT_EQ(g.class_name, w.class_name) << w.name;
    ASSERT_EQ(g.tensors.size(), w.tensors.size()) << w.name;
    for (size_t t = 0; t < w.tensors.size(); ++t) {
      EXPECT_EQ(g.tensors[t].name, w.tensors[t].name) << w.name;
      EXPECT_EQ(g.tensors[t].numel, w.tensors[t].numel) << w.name;
      EXPECT_EQ(g.tensors[t].dtype, w.tensors[t].dtype) << w.name;
      EXPECT_EQ(g.tensors[t].kind, w.tensors[t].kind) << w.name;
    }
  }
  EXPECT_EQ(got.no_split(), want.no_split());
  EXPECT_TRUE(got.no_split().empty());
  EXPECT_EQ(got.state_dict_names(), want.state_dict_names());
  for (auto dtype : {SafetensorsDType::F32, SafetensorsDType::BF16}) {
    const auto g = parallel::compute_module_sizes(got, dtype);
    const auto w = parallel::compute_module_sizes(want, dtype);
    EXPECT_EQ(g.keys(), w.keys());
    for (const auto& k : w.keys()) EXPECT_EQ(g[k], w[k]) << k;
  }
}

// Every golden case of the tiny Qwen-Image VAE, placed from the tree the engine builds.
TEST(QwenImageVaeModuleTree, PlacesAsAccelerateDoes) {
  const parallel::ModuleTree tree = tiny_tree();
  const auto fixture = parallel::testing::load_placement_fixture("model_maps.json");
  int checked = 0;
  for (const auto& c : fixture["cases"]) {
    if (c["model"] != "tiny_qwen_image_vae") continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    const parallel::MaxMemory given = parallel::testing::max_memory_from_json(c["max_memory"]);
    parallel::SizeOptions sizes;
    sizes.dtype = parallel::parse_torch_dtype(c["dtype"].get<std::string>());
    const auto placement = parallel::place_model(tree, c["strategy"].get<std::string>(), given,
                                                 static_cast<int>(given.entries().size()), sizes);
    std::map<std::string, std::string> got, want;
    for (const auto& [k, v] : placement.device_map) got[k] = v.str();
    for (const auto& p : c["device_map"])
      want[p[0]] = parallel::testing::device_from_json(p[1]).str();
    EXPECT_EQ(got, want);
    std::map<std::string, int64_t> got_bytes, want_bytes;
    for (const auto& [device, bytes] : placement.bytes.per_device) got_bytes[device.str()] = bytes;
    for (const auto& [device, bytes] : c["bytes_per_device"].items())
      want_bytes[parallel::testing::device_from_json(
                     device == "disk" ? nlohmann::json("disk") : nlohmann::json(std::stoi(device)))
                     .str()] = bytes.get<int64_t>();
    EXPECT_EQ(got_bytes, want_bytes);
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

}  // namespace
}  // namespace paradiff::models::vae_qwen_image
