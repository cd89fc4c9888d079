// Module sizes: from real safetensors headers (the tiny pipeline's checkpoints) and from the
// structure fixtures, against accelerate's compute_module_sizes on the same models (golden).
#include <gtest/gtest.h>

#include "paradiff/io/checkpoint.h"
#include "paradiff/io/safetensors_writer.h"
#include "paradiff/parallel/placement/module_sizes.h"
#include "placement_test_util.h"
#include "testing/temp_dir.h"

namespace paradiff::parallel {
namespace {

using testing::placement_model;

std::optional<SafetensorsDType> dtype_key(const std::string& key) {
  if (key == "None") return std::nullopt;
  return parse_torch_dtype(key);
}

void expect_sizes_equal(const ModuleSizes& got, const nlohmann::ordered_json& want,
                        bool check_order) {
  std::vector<std::string> want_keys;
  for (const auto& [name, bytes] : want.items()) {
    want_keys.push_back(name);
    EXPECT_EQ(got[name], bytes.get<int64_t>()) << "module '" << name << "'";
    EXPECT_TRUE(got.contains(name)) << "module '" << name << "'";
  }
  EXPECT_EQ(got.keys().size(), want_keys.size());
  if (check_order) {
    EXPECT_EQ(got.keys(), want_keys);
  }
}

nlohmann::ordered_json sizes_fixture() {
  std::ifstream in(paradiff::testing::source_path("tests/fixtures/placement/sizes.json"));
  return nlohmann::ordered_json::parse(in);
}

TEST(ModuleSizes, FromSafetensorsHeadersMatchAccelerate) {
  const auto fixture = sizes_fixture();
  ASSERT_EQ(fixture.size(), 4u);
  for (const auto& [component, c] : fixture.items()) {
    SCOPED_TRACE(component);
    const Checkpoint checkpoint =
        Checkpoint::open(paradiff::testing::source_path(c["checkpoint"].get<std::string>()));
    ModuleTree tree =
        ModuleTree::from_checkpoint(checkpoint, std::nullopt, c["strip_prefix"].get<std::string>());
    // What the meta model has and the file does not: CLIP's non-persistent position_ids, and
    // T5's embed_tokens, a second copy of shared.weight (untied on a meta model) that
    // transformers does not save.
    for (const auto& t : c["meta_only_tensors"])
      tree.add_tensor(t[0], t[1], parse_torch_dtype(t[2]), TensorKind::NonPersistentBuffer);
    for (const auto& [dtype, want] : c["sizes"].items()) {
      SCOPED_TRACE(dtype);
      expect_sizes_equal(compute_module_sizes(tree, dtype_key(dtype)), want, false);
    }
  }
}

TEST(ModuleSizes, FromStructureMatchAccelerateInItsKeyOrder) {
  const auto fixture = sizes_fixture();
  for (const auto& [component, c] : fixture.items()) {
    SCOPED_TRACE(component);
    const ModuleTree& tree = placement_model(c["model"].get<std::string>());
    for (const auto& [dtype, want] : c["sizes"].items())
      expect_sizes_equal(compute_module_sizes(tree, dtype_key(dtype)), want, true);
  }
}

TEST(ModuleSizes, ShardedCheckpointWithNaturalModuleOrder) {
  paradiff::testing::TempDir dir;
  write_safetensors(dir.file("a.safetensors"), {{"blocks.10.w", Tensor::zeros({2, 3}, DType::BF16)},
                                                {"blocks.2.w", Tensor::zeros({4}, DType::F32)}});
  write_safetensors(dir.file("b.safetensors"), {{"blocks.1.w", Tensor::zeros({5}, DType::F32)},
                                                {"norm.w", Tensor::zeros({1}, DType::I64)}});
  std::ofstream(dir.file("model.safetensors.index.json"))
      << R"({"metadata": {}, "weight_map": {"blocks.10.w": "a.safetensors",
            "blocks.2.w": "a.safetensors", "blocks.1.w": "b.safetensors",
            "norm.w": "b.safetensors"}})";
  const ModuleTree tree =
      ModuleTree::from_checkpoint(Checkpoint::open(dir.file("model.safetensors.index.json")));
  const ModuleNode& blocks = tree.node(*tree.find("blocks"));
  ASSERT_EQ(blocks.children.size(), 3u);
  EXPECT_EQ(tree.node(blocks.children[0]).name, "blocks.1");
  EXPECT_EQ(tree.node(blocks.children[1]).name, "blocks.2");
  EXPECT_EQ(tree.node(blocks.children[2]).name, "blocks.10");
  const ModuleSizes stored = compute_module_sizes(tree);
  EXPECT_EQ(stored["blocks"], 6 * 2 + 4 * 4 + 5 * 4);
  EXPECT_EQ(stored[""], 6 * 2 + 4 * 4 + 5 * 4 + 8);
  EXPECT_EQ(compute_module_sizes(tree, SafetensorsDType::BF16)[""], 6 * 2 + 4 * 2 + 5 * 2 + 8);
  // Counted as diffusers' float32 meta model counts them: floats at 4 bytes, integers as stored.
  const ModuleTree created = ModuleTree::from_checkpoint(
      Checkpoint::open(dir.file("model.safetensors.index.json")), SafetensorsDType::F32);
  EXPECT_EQ(compute_module_sizes(created, SafetensorsDType::F32)[""], 15 * 4 + 8);
}

TEST(ModuleSizes, TargetDTypeNeverWidensAndSkipsIntegers) {
  ModuleTree tree;
  tree.add_tensor("a.weight", 10, SafetensorsDType::BF16);
  tree.add_tensor("a.b.weight", 10, SafetensorsDType::F32);
  tree.add_tensor("ids", 10, SafetensorsDType::I64, TensorKind::Buffer);
  const ModuleSizes f32 = compute_module_sizes(tree, SafetensorsDType::F32);
  EXPECT_EQ(f32["a"], 20 + 40);  // bf16 stays 2 bytes: min(target, own)
  EXPECT_EQ(f32["ids"], 80);
  const ModuleSizes bf16 = compute_module_sizes(tree, SafetensorsDType::BF16);
  EXPECT_EQ(bf16["a.b"], 20);
  EXPECT_EQ(bf16[""], 20 + 20 + 80);
  const ModuleSizes special =
      compute_module_sizes(tree, SafetensorsDType::BF16, {{"a.b.weight", SafetensorsDType::F32}});
  EXPECT_EQ(special["a.b"], 40);
  EXPECT_EQ(compute_module_sizes(tree, std::nullopt, {}, true)[""], 80);
  // As created: a bf16 checkpoint counted as the float32 meta model diffusers builds.
  ModuleTree created;
  created.add_tensor("w", 10, SafetensorsDType::F32);
  EXPECT_EQ(compute_module_sizes(created, SafetensorsDType::F32)[""], 40);
}

TEST(ModuleSizes, TiedDuplicatesCountOnce) {
  const ModuleTree& t5 = placement_model("tiny_text_encoder_2_tied");
  const ModuleTree& untied = placement_model("tiny_text_encoder_2");
  const ModuleSizes tied = compute_module_sizes(t5);
  EXPECT_TRUE(t5.is_tied_duplicate("encoder.embed_tokens.weight"));
  EXPECT_FALSE(t5.is_tied_duplicate("shared.weight"));
  EXPECT_FALSE(tied.contains("encoder.embed_tokens"));
  EXPECT_EQ(compute_module_sizes(untied).total() - tied.total(), tied["shared"]);
}

TEST(ModuleTree, RefusesADuplicateTensor) {
  ModuleTree tree;
  tree.add_tensor("norm.w", 1, SafetensorsDType::F32);
  EXPECT_EQ(testing::error_of([&] { tree.add_tensor("norm.w", 1, SafetensorsDType::F32); }),
            "tensor norm.w is given twice");
}

TEST(ModuleTree, StructureRefusesBadInput) {
  EXPECT_NE(testing::error_of([] {
              ModuleTree::from_json(
                  nlohmann::json::parse(R"({"classes":["A"],"modules":[["",0],["a.b",0]]})"));
            }).find("module 'a.b' comes before its parent"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] {
              parse_torch_dtype("complex64");
            }).find("unknown torch dtype 'complex64'"),
            std::string::npos);
}

}  // namespace
}  // namespace paradiff::parallel
