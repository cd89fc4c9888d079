// A corpus of damaged and hostile safetensors files, generated here: each must be rejected at
// open with an Error that names the file and says what is wrong, and none may crash (the
// sanitizer build runs these too).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "io/io_test_util.h"
#include "paradiff/io/safetensors.h"

namespace paradiff {
namespace {

using testing::as_bytes;
using testing::safetensors_image;
using testing::TempDir;
using testing::write_file;

struct HostileCase {
  std::string label;
  std::string bytes;
  std::string expected;  // a substring of the error message
};
// gtest prints a failing case by its label rather than as raw bytes.
void PrintTo(const HostileCase& c, std::ostream* os) {
  *os << c.label;
}

// A tensor entry: "name":{"dtype":..,"shape":..,"data_offsets":..}, fields as raw JSON.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":" + dtype + ",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

const std::string kGoodHeader = "{" + entry("a", "\"F32\"", "[2]", "[0,8]") + "," +
                                entry("b", "\"F32\"", "[1]", "[8,12]") + "}";
const std::string kGoodData(12, '\x11');

std::string with_entry(const std::string& dtype, const std::string& shape,
                       const std::string& offsets, const std::string& data) {
  return safetensors_image("{" + entry("a", dtype, shape, offsets) + "}", data);
}

std::vector<HostileCase> hostile_cases() {
  const std::string good = safetensors_image(kGoodHeader, kGoodData);
  std::string ones;
  for (int i = 0; i < 65; ++i) ones += i ? ",1" : "1";
  return {
      // Sizes and the length prefix.
      {"empty", "",
       "not a safetensors file: expected at least 8 bytes (the header length), found 0"},
      {"seven_bytes", std::string("\x08\0\0\0\0\0\0", 7),
       "not a safetensors file: expected at least 8 bytes (the header length), found 7"},
      {"truncated_data", good.substr(0, good.size() - 4),
       "tensor \"b\" data_offsets [8, 12] extend past the end of the data region (8 bytes"},
      {"truncated_header", good.substr(0, 18),
       "header length " + std::to_string(kGoodHeader.size()) +
           " extends past the end of the file: expected at most 10 bytes after the 8-byte "
           "length, the file is 18 bytes"},
      {"length_past_end", safetensors_image("{}", "", 1000),
       "header length 1000 extends past the end of the file: expected at most 2 bytes"},
      {"length_over_cap", safetensors_image("{}", "", 100'000'001),
       "header length 100000001 exceeds the limit of 100000000 bytes"},
      {"length_max_u64", safetensors_image("{}", "", ~uint64_t{0}),
       "header length 18446744073709551615 exceeds the limit of 100000000 bytes"},
      // Not JSON, or not the right JSON.
      {"empty_header", safetensors_image(""), "header is not valid JSON: parse error at line 1"},
      {"not_json", safetensors_image("{abc"),
       "header is not valid JSON: parse error at line 1, column 2"},
      {"trailing_garbage", safetensors_image("{} x"), "header is not valid JSON"},
      {"nul_padding", safetensors_image(std::string("{}\0\0\0\0\0\0", 8)),
       "header is not valid JSON: NUL byte at file offset 10"},
      {"nul_then_garbage", safetensors_image(std::string("{}\0{\"a\":5}", 10)),
       "header is not valid JSON: NUL byte at file offset 10"},
      {"invalid_utf8", safetensors_image("{\"\xff\":{}}"), "header is not valid JSON"},
      {"number_overflow", with_entry("\"F32\"", "[1e999]", "[0,0]", ""),
       "header is not valid JSON: number overflow parsing '1e999'"},
      {"json_array", safetensors_image("[1,2]"), "header is an array, expected a JSON object"},
      {"json_number", safetensors_image("5"), "header is 5, expected a JSON object"},
      {"deep_nesting", safetensors_image(std::string(100000, '[') + std::string(100000, ']')),
       "header is an array, expected a JSON object"},
      // Spans.
      {"overlap",
       safetensors_image("{" + entry("a", "\"F32\"", "[2]", "[0,8]") + "," +
                             entry("b", "\"F32\"", "[2]", "[4,12]") + "}",
                         std::string(12, '\0')),
       "tensors \"a\" (data_offsets ending at 8) and \"b\" (data_offsets [4, 12]) overlap"},
      {"same_span_twice",
       safetensors_image("{" + entry("a", "\"F32\"", "[2]", "[0,8]") + "," +
                             entry("b", "\"F32\"", "[2]", "[0,8]") + "}",
                         std::string(8, '\0')),
       "tensors \"a\" (data_offsets ending at 8) and \"b\" (data_offsets [0, 8]) overlap"},
      {"hole",
       safetensors_image("{" + entry("a", "\"F32\"", "[2]", "[0,8]") + "," +
                             entry("b", "\"F32\"", "[1]", "[12,16]") + "}",
                         std::string(16, '\0')),
       "bytes [8, 12) of the data region belong to no tensor (a hole between \"a\" and \"b\")"},
      {"hole_at_start", with_entry("\"F32\"", "[2]", "[4,12]", std::string(12, '\0')),
       "bytes [0, 4) of the data region belong to no tensor (a hole before the first tensor, "
       "\"a\")"},
      {"trailing_bytes", good + "abcd",
       "the data region is 16 bytes but the tensors cover only 12 (4 trailing bytes)"},
      {"no_tensors_but_data", safetensors_image("{}", "abcd"),
       "the data region is 4 bytes but the tensors cover only 0 (4 trailing bytes)"},
      {"past_data_region", with_entry("\"U8\"", "[1000]", "[0,1000]", std::string(8, '\0')),
       "tensor \"a\" data_offsets [0, 1000] extend past the end of the data region (8 bytes, "
       "from file offset "},
      {"span_size_mismatch", with_entry("\"F32\"", "[2,3]", "[0,20]", std::string(20, '\0')),
       "tensor \"a\" data_offsets [0, 20] span 20 bytes, but F32[2, 3] needs 24 bytes"},
      {"begin_after_end", with_entry("\"F32\"", "[0]", "[8,0]", std::string(8, '\0')),
       "tensor \"a\" data_offsets [8, 0] have begin after end"},
      // Field types.
      {"offsets_wrong_type", with_entry("\"F32\"", "[2]", "\"0,8\"", std::string(8, '\0')),
       "tensor \"a\" data_offsets must be an array, found \"0,8\""},
      {"offsets_object", with_entry("\"F32\"", "[2]", "{}", std::string(8, '\0')),
       "tensor \"a\" data_offsets must be an array, found an object"},
      {"offsets_three", with_entry("\"F32\"", "[2]", "[0,8,8]", std::string(8, '\0')),
       "tensor \"a\" data_offsets has more than 2 values (expected [begin, end])"},
      {"offsets_one", with_entry("\"F32\"", "[2]", "[0]", std::string(8, '\0')),
       "tensor \"a\" data_offsets must be [begin, end], found 1 value(s)"},
      {"offsets_negative", with_entry("\"F32\"", "[2]", "[-8,0]", ""),
       "tensor \"a\" data_offsets has a negative value -8"},
      {"offsets_float", with_entry("\"F32\"", "[2]", "[0,8.0]", std::string(8, '\0')),
       "tensor \"a\" data_offsets must hold non-negative integers, found 8.0"},
      {"unknown_dtype", with_entry("\"F4\"", "[2]", "[0,8]", std::string(8, '\0')),
       "tensor \"a\" has unknown dtype \"F4\" (known: BOOL, U8, I8, I16, U16, I32, U32, I64, "
       "U64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2)"},
      {"lowercase_dtype", with_entry("\"f32\"", "[2]", "[0,8]", std::string(8, '\0')),
       "tensor \"a\" has unknown dtype \"f32\""},
      {"dtype_not_string", with_entry("5", "[2]", "[0,8]", std::string(8, '\0')),
       "tensor \"a\" dtype must be a string, found 5"},
      {"shape_not_array", with_entry("\"F32\"", "2", "[0,8]", std::string(8, '\0')),
       "tensor \"a\" shape must be an array, found 2"},
      {"negative_dim", with_entry("\"F32\"", "[-1,2]", "[0,8]", std::string(8, '\0')),
       "tensor \"a\" shape has a negative value -1"},
      {"float_dim", with_entry("\"F32\"", "[1.5]", "[0,8]", std::string(8, '\0')),
       "tensor \"a\" shape must hold non-negative integers, found 1.5"},
      {"string_dim", with_entry("\"F32\"", "[\"2\"]", "[0,8]", std::string(8, '\0')),
       "tensor \"a\" shape must hold non-negative integers, found \"2\""},
      {"null_dim", with_entry("\"F32\"", "[null]", "[0,8]", std::string(8, '\0')),
       "tensor \"a\" shape must hold non-negative integers, found null"},
      {"nested_dim", with_entry("\"F32\"", "[[2]]", "[0,8]", std::string(8, '\0')),
       "tensor \"a\" shape must hold non-negative integers, found an array"},
      {"too_many_dims", with_entry("\"F32\"", "[" + ones + "]", "[0,4]", std::string(4, '\0')),
       "tensor \"a\" shape has more than 64 dimensions"},
      {"shape_overflow", with_entry("\"F32\"", "[4294967296,4294967296]", "[0,0]", ""),
       "tensor \"a\" shape [4294967296,4294967296] has more elements than fit in 64 bits"},
      {"dim_over_int64", with_entry("\"U8\"", "[9223372036854775808]", "[0,0]", ""),
       "tensor \"a\" shape [9223372036854775808] has more elements than fit in 64 bits"},
      {"bytes_overflow", with_entry("\"F32\"", "[4611686018427387904]", "[0,0]", ""),
       "tensor \"a\" shape [4611686018427387904] has more bytes than fit in 64 bits"},
      {"missing_field",
       safetensors_image(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')),
       "tensor \"a\" has no \"dtype\" field"},
      {"unknown_field",
       safetensors_image(R"({"a":{"dtype":"F32","shape":[2],"offsets":[0,8]}})",
                         std::string(8, '\0')),
       "tensor \"a\" has unknown field \"offsets\" (expected \"dtype\", \"shape\" and "
       "\"data_offsets\")"},
      {"entry_not_object", safetensors_image(R"({"a":5})"),
       "tensor \"a\" must be an object, found 5"},
      {"entry_array", safetensors_image(R"({"a":[]})"),
       "tensor \"a\" must be an object, found an array"},
      // Duplicates, which a JSON DOM would silently collapse to the last one.
      {"duplicate_tensor",
       safetensors_image("{" + entry("a", "\"F32\"", "[2]", "[0,8]") + "," +
                             entry("a", "\"F32\"", "[2]", "[8,16]") + "}",
                         std::string(16, '\0')),
       "header lists \"a\" twice (duplicate key)"},
      {"duplicate_field",
       safetensors_image(R"({"a":{"dtype":"F32","dtype":"I64","shape":[2],"data_offsets":[0,8]}})",
                         std::string(8, '\0')),
       "tensor \"a\" lists field \"dtype\" twice (duplicate key)"},
      {"duplicate_metadata", safetensors_image(R"({"__metadata__":{},"__metadata__":{}})"),
       "header lists \"__metadata__\" twice (duplicate key)"},
      {"duplicate_metadata_key", safetensors_image(R"({"__metadata__":{"k":"1","k":"2"}})"),
       "__metadata__ lists key \"k\" twice (duplicate key)"},
      // __metadata__.
      {"metadata_array", safetensors_image(R"({"__metadata__":[]})"),
       "__metadata__ must be an object, found an array"},
      {"metadata_string", safetensors_image(R"({"__metadata__":"x"})"),
       "__metadata__ must be an object, found \"x\""},
      {"metadata_value_number", safetensors_image(R"({"__metadata__":{"k":1}})"),
       "__metadata__ value of \"k\" must be a string, found 1"},
      {"metadata_value_object", safetensors_image(R"({"__metadata__":{"k":{}}})"),
       "__metadata__ value of \"k\" must be a string, found an object"},
  };
}

class HostileSafetensors : public ::testing::TestWithParam<HostileCase> {};

TEST_P(HostileSafetensors, IsRejectedWithAClearMessage) {
  const HostileCase& c = GetParam();
  TempDir dir;
  const std::string path = dir.file(c.label + ".safetensors");
  write_file(path, c.bytes);
  // Through the file (mmap) path: the message starts with the path.
  EXPECT_ERROR_CONTAINS(SafetensorsFile::open(path), path + ": " + c.expected);
  // Through the in-memory path the fuzzer uses: the same parser, the same message.
  EXPECT_ERROR_CONTAINS(SafetensorsFile::from_bytes(as_bytes(c.bytes), "mem"),
                        "mem: " + c.expected);
}

INSTANTIATE_TEST_SUITE_P(Corpus, HostileSafetensors, ::testing::ValuesIn(hostile_cases()),
                         [](const auto& info) { return info.param.label; });

TEST(HostileSafetensors, GoodBaselineOpens) {
  // The corpus's cases are small edits of this file, which must be accepted.
  const SafetensorsFile file =
      SafetensorsFile::from_bytes(as_bytes(safetensors_image(kGoodHeader, kGoodData)), "good");
  EXPECT_EQ(file.names(), (std::vector<std::string>{"a", "b"}));
}

TEST(HostileSafetensors, MissingFileAndDirectory) {
  TempDir dir;
  EXPECT_ERROR_CONTAINS(SafetensorsFile::open(dir.file("nope.safetensors")),
                        dir.file("nope.safetensors") + ": cannot open: No such file or directory");
  EXPECT_ERROR_CONTAINS(SafetensorsFile::open(dir.path()),
                        dir.path() + ": cannot open: is a directory");
  ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0600), 0);
  EXPECT_ERROR_CONTAINS(SafetensorsFile::open(dir.file("fifo")),
                        dir.file("fifo") + ": cannot open: not a regular file");
}

TEST(HostileSafetensors, LongNamesAreCutInMessages) {
  const std::string name(10000, 'x');
  const std::string bytes = safetensors_image("{" + entry(name, "\"F4\"", "[0]", "[0,0]") + "}");
  try {
    SafetensorsFile::from_bytes(as_bytes(bytes), "mem");
    FAIL() << "not rejected";
  } catch (const Error& e) {
    EXPECT_LT(std::string(e.what()).size(), 400u) << e.what();
    EXPECT_NE(std::string(e.what()).find("xxx...\" has unknown dtype"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace paradiff
