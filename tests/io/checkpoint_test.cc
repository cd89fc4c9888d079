#include "paradiff/io/checkpoint.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/io_test_util.h"
#include "paradiff/io/safetensors_writer.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

using testing::TempDir;
using testing::write_file;

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

// Two shards and an index, as diffusers' save_pretrained(max_shard_size=...) writes them.
struct ShardedModel {
  std::map<std::string, Tensor> tensors;
  std::string index;
};

ShardedModel write_sharded(const TempDir& dir, std::mt19937_64& rng) {
  ShardedModel m;
  m.tensors["x_embedder.weight"] = testing::random_normal({8, 4}, DType::BF16, rng);
  m.tensors["x_embedder.bias"] = testing::random_normal({8}, DType::BF16, rng);
  m.tensors["proj_out.weight"] = testing::random_normal({4, 8}, DType::F32, rng);
  write_safetensors(dir.file("model-00001-of-00002.safetensors"),
                    {{"x_embedder.weight", m.tensors["x_embedder.weight"]},
                     {"x_embedder.bias", m.tensors["x_embedder.bias"]}});
  write_safetensors(dir.file("model-00002-of-00002.safetensors"),
                    {{"proj_out.weight", m.tensors["proj_out.weight"]}});
  m.index = dir.file("diffusion_pytorch_model.safetensors.index.json");
  write_file(m.index, R"({
    "metadata": {"total_size": 208, "format": "pt"},
    "weight_map": {
      "x_embedder.weight": "model-00001-of-00002.safetensors",
      "x_embedder.bias": "model-00001-of-00002.safetensors",
      "proj_out.weight": "model-00002-of-00002.safetensors"
    }
  })");
  return m;
}

TEST(Checkpoint, ReadsAShardedCheckpointThroughItsIndex) {
  auto rng = testing::make_rng();
  TempDir dir;
  const ShardedModel m = write_sharded(dir, rng);
  const Checkpoint ck = Checkpoint::open(m.index);
  EXPECT_TRUE(ck.is_sharded());
  EXPECT_EQ(ck.shards().size(), 2u);
  EXPECT_EQ(ck.size(), 3u);
  EXPECT_EQ(ck.names(),
            (std::vector<std::string>{"proj_out.weight", "x_embedder.bias", "x_embedder.weight"}));
  EXPECT_EQ(ck.metadata(),
            (std::map<std::string, std::string>{{"total_size", "208"}, {"format", "pt"}}));
  for (const auto& [name, expected] : m.tensors) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(ck.contains(name));
    EXPECT_EQ(ck.info(name).shape, expected.shape().to_vector());
    EXPECT_TRUE(same_bytes(ck.read(name, expected.dtype()), expected));
  }
  EXPECT_EQ(ck.file_of("proj_out.weight").path(), dir.file("model-00002-of-00002.safetensors"));
  const Tensor converted = ck.read("x_embedder.bias", DType::F32);
  EXPECT_EQ(converted.data<float>()[3],
            bf16_to_float(m.tensors.at("x_embedder.bias").data<bf16>()[3]));
  EXPECT_ERROR_CONTAINS(ck.read("nope", DType::F32),
                        m.index + ": no tensor named \"nope\" (the checkpoint holds 3 tensors)");
}

TEST(Checkpoint, OpensASingleFile) {
  TempDir dir;
  const Tensor w = Tensor::zeros({2, 2}, DType::F32);
  write_safetensors(dir.file("one.safetensors"), {{"w", w}}, {{"format", "pt"}});
  const Checkpoint ck = Checkpoint::open(dir.file("one.safetensors"));
  EXPECT_FALSE(ck.is_sharded());
  EXPECT_EQ(ck.names(), std::vector<std::string>{"w"});
  EXPECT_EQ(ck.metadata().at("format"), "pt");
  EXPECT_TRUE(same_bytes(ck.read("w", DType::F32), w));
}

TEST(Checkpoint, OpenFolderFindsDiffusersAndTransformersNames) {
  auto rng = testing::make_rng();
  const Tensor w = testing::random_normal({3}, DType::F32, rng);
  {
    TempDir dir;
    write_safetensors(dir.file("diffusion_pytorch_model.safetensors"), {{"w", w}});
    EXPECT_EQ(Checkpoint::open_folder(dir.path()).path(),
              dir.file("diffusion_pytorch_model.safetensors"));
  }
  {
    TempDir dir;  // transformers' name, found as the fallback
    write_safetensors(dir.file("model.safetensors"), {{"w", w}});
    EXPECT_EQ(Checkpoint::open_folder(dir.path()).path(), dir.file("model.safetensors"));
  }
  {
    TempDir dir;  // both a single file and an index: the index wins, as in diffusers
    const ShardedModel m = write_sharded(dir, rng);
    write_safetensors(dir.file("diffusion_pytorch_model.safetensors"), {{"w", w}});
    const Checkpoint ck = Checkpoint::open_folder(dir.path());
    EXPECT_EQ(ck.path(), m.index);
    EXPECT_TRUE(ck.is_sharded());
  }
  {
    TempDir dir;  // a custom stem
    write_safetensors(dir.file("vae.safetensors"), {{"w", w}});
    EXPECT_EQ(Checkpoint::open_folder(dir.path(), "vae").path(), dir.file("vae.safetensors"));
  }
}

TEST(Checkpoint, OpenFolderErrorsListWhatItLookedFor) {
  TempDir dir;
  EXPECT_ERROR_CONTAINS(Checkpoint::open_folder(dir.path()),
                        dir.path() +
                            ": no safetensors checkpoint found; looked for "
                            "diffusion_pytorch_model.safetensors.index.json, "
                            "diffusion_pytorch_model.safetensors, model.safetensors.index.json, "
                            "model.safetensors");
  write_file(dir.file("diffusion_pytorch_model.bin"), "pickle");
  EXPECT_ERROR_CONTAINS(Checkpoint::open_folder(dir.path()),
                        "model.safetensors (found diffusion_pytorch_model.bin: PyTorch pickle "
                        "checkpoints are not supported, only safetensors)");
  EXPECT_ERROR_CONTAINS(Checkpoint::open_folder(dir.file("absent")),
                        dir.file("absent") + ": no such directory");
  EXPECT_ERROR_CONTAINS(Checkpoint::open_folder(dir.file("diffusion_pytorch_model.bin")),
                        ": not a directory");
  write_file(dir.file("pytorch_model.bin"), "pickle");
  EXPECT_ERROR_CONTAINS(Checkpoint::open_folder(dir.path(), "model"),
                        "looked for model.safetensors.index.json, model.safetensors (found "
                        "pytorch_model.bin: PyTorch pickle");
}

struct HostileIndex {
  std::string label;
  std::string index;     // the index.json text
  std::string expected;  // a substring of the error, after "<index path>: "
};
void PrintTo(const HostileIndex& c, std::ostream* os) {
  *os << c.label;
}

class HostileCheckpoint : public ::testing::TestWithParam<HostileIndex> {};

TEST_P(HostileCheckpoint, IsRejectedWithAClearMessage) {
  const HostileIndex& c = GetParam();
  TempDir dir;
  // Shards the cases point at: a: {a}, b: {b, c}, dup: {a}, dup2: {a, d}, broken: not valid.
  write_safetensors(dir.file("a.safetensors"), {{"a", Tensor::zeros({2}, DType::F32)}});
  write_safetensors(dir.file("b.safetensors"),
                    {{"b", Tensor::zeros({1}, DType::F32)}, {"c", Tensor::zeros({1}, DType::F32)}});
  write_safetensors(dir.file("dup.safetensors"), {{"a", Tensor::zeros({2}, DType::F32)}});
  write_safetensors(dir.file("dup2.safetensors"),
                    {{"a", Tensor::zeros({2}, DType::F32)}, {"d", Tensor::zeros({1}, DType::F32)}});
  write_file(dir.file("broken.safetensors"), std::string("\x02\0\0\0\0\0\0\0[]", 10));
  const std::string index = dir.file("x.safetensors.index.json");
  write_file(index, c.index);
  std::string expected = c.expected;
  for (size_t at; (at = expected.find("$DIR")) != std::string::npos;)
    expected.replace(at, 4, dir.path());
  EXPECT_ERROR_CONTAINS(Checkpoint::open(index), index + ": " + expected);
}

INSTANTIATE_TEST_SUITE_P(
    Corpus, HostileCheckpoint,
    ::testing::Values(
        HostileIndex{"missing_shard",
                     R"({"weight_map":{"a":"a.safetensors","z":"zz.safetensors"}})",
                     "shard \"zz.safetensors\": $DIR/zz.safetensors: cannot open: No such file "
                     "or directory"},
        HostileIndex{"tensor_not_in_shard",
                     R"({"weight_map":{"a":"a.safetensors","b":"a.safetensors"}})",
                     "tensor \"b\" is listed in shard \"a.safetensors\", which does not hold it"},
        HostileIndex{"tensor_in_two_shards",
                     R"({"weight_map":{"a":"a.safetensors","d":"dup2.safetensors"}})",
                     "tensor \"a\" appears in two shards: \"a.safetensors\" (as the index "
                     "says) and \"dup2.safetensors\""},
        HostileIndex{"unlisted_tensor",
                     R"({"weight_map":{"a":"a.safetensors","b":"b.safetensors"}})",
                     "shard \"b.safetensors\" holds tensor \"c\", which the index does not list"},
        HostileIndex{"duplicate_key",
                     R"({"weight_map":{"a":"a.safetensors","a":"dup.safetensors"}})",
                     "invalid JSON: duplicate key \"a\" in the object at \"/weight_map\""},
        HostileIndex{"broken_shard", R"({"weight_map":{"a":"broken.safetensors"}})",
                     "shard \"broken.safetensors\": $DIR/broken.safetensors: header is an "
                     "array, expected a JSON object"},
        HostileIndex{"parent_escape", R"({"weight_map":{"a":"../a.safetensors"}})",
                     "tensor \"a\" names shard \"../a.safetensors\", which is not a file name "
                     "inside the index's folder"},
        HostileIndex{"absolute_path", R"({"weight_map":{"a":"/etc/passwd"}})",
                     "tensor \"a\" names shard \"/etc/passwd\", which is not a file name inside"},
        HostileIndex{"empty_shard_name", R"({"weight_map":{"a":""}})",
                     "tensor \"a\" names shard \"\", which is not a file name inside"},
        HostileIndex{"shard_not_string", R"({"weight_map":{"a":1}})",
                     "weight_map entry for \"a\" must be a shard file name, got 1"},
        HostileIndex{"no_weight_map", R"({"metadata":{}})", "no \"weight_map\""},
        HostileIndex{"weight_map_array", R"({"weight_map":[]})",
                     "\"weight_map\" must be an object, got []"},
        HostileIndex{"empty_weight_map", R"({"weight_map":{}})", "\"weight_map\" lists no tensors"},
        HostileIndex{"metadata_array", R"({"metadata":[],"weight_map":{"a":"a.safetensors"}})",
                     "\"metadata\" must be an object, got []"},
        HostileIndex{"not_json", R"({"weight_map":)", "invalid JSON: parse error at line 1"},
        HostileIndex{"not_object", R"(["a.safetensors"])",
                     "not a JSON object, found [\"a.safetensors\"]"}),
    [](const auto& info) { return info.param.label; });

}  // namespace
}  // namespace paradiff
