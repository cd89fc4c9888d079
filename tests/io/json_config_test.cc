#include "paradiff/io/json_config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "io/io_test_util.h"

namespace paradiff {
namespace {

using testing::TempDir;
using testing::write_file;

// A config in the shape diffusers writes for FluxTransformer2DModel, plus wrong values to probe.
const char* kConfig = R"({
  "_class_name": "FluxTransformer2DModel",
  "_diffusers_version": "0.30.0",
  "num_layers": 19,
  "attention_head_dim": 128.0,
  "patch_size": 1.5,
  "in_channels": "64",
  "guidance_embeds": true,
  "out_channels": null,
  "axes_dims_rope": [16, 56, 56],
  "bad_list": [16, "56"],
  "scale": 0.3611,
  "shift": 1,
  "name": "flux",
  "blocks": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
  "huge": 18446744073709551615,
  "negative": -3,
  "flag_as_int": 1,
  "nested": {"x": 1}
})";

JsonConfig config() {
  return JsonConfig::parse(kConfig, "config.json");
}

TEST(JsonConfig, ReadsTypedValuesAndDefaults) {
  const JsonConfig c = config();
  EXPECT_EQ(c.get_int("num_layers", 0), 19);
  EXPECT_EQ(c.get_int("attention_head_dim", 0), 128);  // 128.0 has no fractional part
  EXPECT_EQ(c.get_int("negative", 0), -3);
  EXPECT_EQ(c.get_int("missing", 7), 7);
  EXPECT_EQ(c.get_int("out_channels", 64), 64);  // null means "use the default", as in diffusers
  EXPECT_EQ(c.optional_int("out_channels"), std::nullopt);
  EXPECT_EQ(c.optional_int("num_layers"), 19);
  EXPECT_EQ(c.require_int("num_layers"), 19);
  EXPECT_DOUBLE_EQ(c.get_float("scale", 0.0), 0.3611);
  EXPECT_DOUBLE_EQ(c.get_float("shift", 0.0), 1.0);  // an integer is a fine float
  EXPECT_DOUBLE_EQ(c.get_float("missing", 2.5), 2.5);
  EXPECT_EQ(c.optional_float("missing"), std::nullopt);
  EXPECT_TRUE(c.get_bool("guidance_embeds", false));
  EXPECT_EQ(c.optional_bool("missing"), std::nullopt);
  EXPECT_EQ(c.get_string("name", ""), "flux");
  EXPECT_EQ(c.get_string("_class_name", ""), "FluxTransformer2DModel");
  EXPECT_EQ(c.optional_string("missing"), std::nullopt);
  EXPECT_EQ(c.get_int_list("axes_dims_rope", {}), (std::vector<int64_t>{16, 56, 56}));
  EXPECT_EQ(c.get_int_list("missing", {1, 2}), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(c.get_float_list("axes_dims_rope", {}), (std::vector<double>{16, 56, 56}));
  EXPECT_EQ(c.get_string_list("blocks", {}),
            (std::vector<std::string>{"DownEncoderBlock2D", "DownEncoderBlock2D"}));
  EXPECT_TRUE(c.has("num_layers"));
  EXPECT_FALSE(c.has("out_channels"));
  EXPECT_FALSE(c.has("missing"));
  EXPECT_TRUE(c.root().contains("nested"));
}

TEST(JsonConfig, WrongTypesNameTheFileKeyAndValue) {
  const JsonConfig c = config();
  EXPECT_ERROR_CONTAINS(c.get_int("in_channels", 0),
                        "config.json: config key 'in_channels' must be an integer, got \"64\"");
  EXPECT_ERROR_CONTAINS(c.get_int("patch_size", 0),
                        "config.json: config key 'patch_size' must be an integer, got 1.5");
  EXPECT_ERROR_CONTAINS(c.get_int("guidance_embeds", 0),
                        "config.json: config key 'guidance_embeds' must be an integer, got true");
  EXPECT_ERROR_CONTAINS(c.get_int("huge", 0),
                        "config.json: config key 'huge' must be an integer that fits in 64 "
                        "bits, got 18446744073709551615");
  EXPECT_ERROR_CONTAINS(c.get_int("nested", 0),
                        "config key 'nested' must be an integer, got {\"x\":1}");
  EXPECT_ERROR_CONTAINS(c.get_float("name", 0.0),
                        "config.json: config key 'name' must be a number, got \"flux\"");
  EXPECT_ERROR_CONTAINS(c.get_bool("flag_as_int", false),
                        "config.json: config key 'flag_as_int' must be true or false, got 1");
  EXPECT_ERROR_CONTAINS(c.get_string("num_layers", ""),
                        "config.json: config key 'num_layers' must be a string, got 19");
  EXPECT_ERROR_CONTAINS(c.get_int_list("num_layers", {}),
                        "config.json: config key 'num_layers' must be a list of integers, got 19");
  EXPECT_ERROR_CONTAINS(c.get_int_list("bad_list", {}),
                        "config.json: element 1 of config key 'bad_list' must be an integer, "
                        "got \"56\"");
  EXPECT_ERROR_CONTAINS(c.get_float_list("bad_list", {}),
                        "element 1 of config key 'bad_list' must be a number, got \"56\"");
  EXPECT_ERROR_CONTAINS(c.get_string_list("axes_dims_rope", {}),
                        "config.json: element 0 of config key 'axes_dims_rope' must be a "
                        "string, got 16");
  EXPECT_ERROR_CONTAINS(c.require_int("out_channels"),
                        "config.json: config key 'out_channels' is required");
}

TEST(JsonConfig, RangesNameTheKeyValueAndRange) {
  const JsonConfig c = config();
  EXPECT_EQ(c.get_int("num_layers", 0, 1, 100), 19);
  EXPECT_EQ(c.get_int("missing", -5, 1, 100), -5);  // the caller's default is not checked
  EXPECT_ERROR_CONTAINS(c.get_int("num_layers", 0, 20, 100),
                        "config.json: config key 'num_layers' must be in [20, 100], got 19");
  EXPECT_ERROR_CONTAINS(c.get_int("negative", 0, 0, 10),
                        "config key 'negative' must be in [0, 10], got -3");
  EXPECT_DOUBLE_EQ(c.get_float("scale", 0.0, 0.0, 1.0), 0.3611);
  EXPECT_ERROR_CONTAINS(c.get_float("scale", 0.0, 0.5, 1),
                        "config.json: config key 'scale' must be in [0.5, 1], got 0.3611");
}

TEST(JsonConfig, LoadsFilesAndReportsBadOnes) {
  TempDir dir;
  write_file(dir.file("config.json"), kConfig);
  EXPECT_EQ(JsonConfig::load(dir.file("config.json")).get_int("num_layers", 0), 19);
  EXPECT_EQ(JsonConfig::load(dir.file("config.json")).name(), dir.file("config.json"));

  EXPECT_ERROR_CONTAINS(JsonConfig::load(dir.file("absent.json")),
                        dir.file("absent.json") + ": cannot open: No such file or directory");
  EXPECT_ERROR_CONTAINS(JsonConfig::load(dir.path()), dir.path() + ": cannot open: is a directory");
  ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0600), 0);
  EXPECT_ERROR_CONTAINS(JsonConfig::load(dir.file("fifo")),
                        dir.file("fifo") + ": cannot open: not a regular file");

  write_file(dir.file("bad.json"), "{\n  \"num_layers\": 19\n  \"x\": 1\n}");  // no comma
  EXPECT_ERROR_CONTAINS(JsonConfig::load(dir.file("bad.json")),
                        dir.file("bad.json") +
                            ": invalid JSON: parse error at line 3, column 5: "
                            "syntax error while parsing object - unexpected "
                            "string literal; expected '}'");
  write_file(dir.file("nul.json"), std::string("{}\0{\"a\":1}", 10));
  EXPECT_ERROR_CONTAINS(JsonConfig::load(dir.file("nul.json")),
                        dir.file("nul.json") + ": invalid JSON: NUL byte at offset 2");
  write_file(dir.file("empty.json"), "");
  EXPECT_ERROR_CONTAINS(JsonConfig::load(dir.file("empty.json")),
                        dir.file("empty.json") + ": invalid JSON: parse error at line 1, column 1");
  write_file(dir.file("array.json"), "[1, 2]");
  EXPECT_ERROR_CONTAINS(JsonConfig::load(dir.file("array.json")),
                        dir.file("array.json") + ": not a JSON object, found [1,2]");
  write_file(dir.file("dup.json"), R"({"num_layers": 19, "num_layers": 38})");
  EXPECT_ERROR_CONTAINS(JsonConfig::load(dir.file("dup.json")),
                        dir.file("dup.json") +
                            ": invalid JSON: duplicate key \"num_layers\" in the top-level object");
}

TEST(JsonConfig, StrictParserBoundsNestingAndFindsNestedDuplicates) {
  const std::string deep = std::string(1000, '[') + std::string(1000, ']');
  EXPECT_ERROR_CONTAINS(parse_json_strict(deep, "deep.json"),
                        "deep.json: invalid JSON: nested deeper than 64 levels");
  EXPECT_EQ(parse_json_strict("[[1]]", "ok.json", 2), nlohmann::json::parse("[[1]]"));
  EXPECT_ERROR_CONTAINS(parse_json_strict(R"({"a":[{"b":{"c":1,"c":2}}]})", "n.json"),
                        "n.json: invalid JSON: duplicate key \"c\" in the object at \"/a/*/b\"");
  // The same key in sibling objects is not a duplicate.
  EXPECT_NO_THROW(parse_json_strict(R"([{"a":1},{"a":2}])", "siblings.json"));
}

TEST(JsonConfig, ExcerptsAreShortAndQuoted) {
  EXPECT_EQ(json_excerpt(nlohmann::json("abc")), "\"abc\"");
  EXPECT_EQ(json_excerpt(nlohmann::json("a\nb")), "\"a\\nb\"");
  const std::string cut = json_excerpt(nlohmann::json(std::string(200, 'x')));
  EXPECT_EQ(cut, "\"" + std::string(79, 'x') + "...\"");
}

}  // namespace
}  // namespace paradiff
