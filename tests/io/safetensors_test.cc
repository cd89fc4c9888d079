#include "paradiff/io/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "io/io_test_util.h"
#include "paradiff/core/memory.h"
#include "paradiff/io/safetensors_writer.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

using testing::as_bytes;
using testing::safetensors_image;
using testing::TempDir;
using testing::write_file;

// Random contents for any dtype: floats from the harness, integers spread over a wide range.
Tensor random_tensor(const Shape& shape, DType dtype, std::mt19937_64& rng) {
  if (dtype != DType::I64) return testing::random_normal(shape, dtype, rng);
  Tensor t = Tensor::empty(shape, DType::I64);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = static_cast<int64_t>(rng());
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

template <typename T>
std::string bytes_of(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

TEST(Safetensors, RoundTripsEveryDtypeAsZeroCopyViews) {
  auto rng = testing::make_rng();
  TempDir dir;
  std::map<std::string, Tensor> tensors;
  // Odd sizes so that a bf16 tensor ends at an odd multiple of 2 bytes before the next tensor.
  tensors["w.f32"] = random_tensor({3, 5, 7}, DType::F32, rng);
  tensors["w.bf16"] = random_tensor({13}, DType::BF16, rng);
  tensors["w.f16"] = random_tensor({2, 9}, DType::F16, rng);
  tensors["w.i64"] = random_tensor({11}, DType::I64, rng);
  tensors["scalar"] = random_tensor(Shape{}, DType::F32, rng);
  tensors["empty"] = Tensor::empty({0, 4}, DType::BF16);
  const std::string path = dir.file("round.safetensors");
  write_safetensors(path, tensors, {{"format", "pt"}});

  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.names(),
            (std::vector<std::string>{"empty", "scalar", "w.bf16", "w.f16", "w.f32", "w.i64"}));
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  for (const auto& [name, expected] : tensors) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(file.contains(name));
    EXPECT_EQ(file.info(name).shape, expected.shape().to_vector());
    EXPECT_EQ(file.info(name).dtype, safetensors_dtype(expected.dtype()));
    EXPECT_TRUE(file.is_zero_copy(name, expected.dtype()));
    const int64_t before = current_bytes();
    const Tensor got = file.read(name, expected.dtype());
    EXPECT_EQ(current_bytes(), before) << "a view must not allocate";
    EXPECT_TRUE(same_bytes(got, expected));
  }
  // The same image through the in-memory path.
  const SafetensorsFile image =
      SafetensorsFile::from_bytes(serialize_safetensors(tensors, {{"format", "pt"}}), "mem");
  EXPECT_EQ(image.file_size(), file.file_size());
  EXPECT_TRUE(same_bytes(image.read("w.f32", DType::F32), tensors["w.f32"]));
}

TEST(Safetensors, WriterLayoutIsAlignedSortedAndPadded) {
  std::map<std::string, Tensor> tensors;
  tensors["a"] = Tensor::zeros({3}, DType::BF16);
  tensors["b"] = Tensor::zeros({2}, DType::F32);
  tensors["c"] = Tensor::zeros({1}, DType::I64);
  const std::vector<std::byte> bytes = serialize_safetensors(tensors);
  uint64_t header_length;
  std::memcpy(&header_length, bytes.data(), 8);
  EXPECT_EQ((8 + header_length) % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + header_length + 8 + 8 + 6);
  const SafetensorsFile file = SafetensorsFile::from_bytes(bytes, "mem");
  // Larger elements first: i64, then f32, then bf16.
  EXPECT_EQ(file.info("c").begin, 0u);
  EXPECT_EQ(file.info("c").end, 8u);
  EXPECT_EQ(file.info("b").begin, 8u);
  EXPECT_EQ(file.info("b").end, 16u);
  EXPECT_EQ(file.info("a").begin, 16u);
  EXPECT_EQ(file.info("a").end, 22u);
  EXPECT_EQ(file.info("a").file_offset, 8 + header_length + 16);
  EXPECT_EQ(file.info("a").describe(), str_cat("BF16[3] at bytes [", 8 + header_length + 16, ", ",
                                               8 + header_length + 22, ") of the file"));
  EXPECT_TRUE(file.metadata().empty());
}

TEST(Safetensors, WriterErrorsNameThePath) {
  TempDir dir;
  const std::string path = dir.file("missing-dir/out.safetensors");
  EXPECT_ERROR_CONTAINS(write_safetensors(path, {{"x", Tensor::zeros({1}, DType::F32)}}),
                        path + ": cannot open for writing: No such file or directory");
  EXPECT_ERROR_CONTAINS(serialize_safetensors({{"__metadata__", Tensor::zeros({1}, DType::F32)}}),
                        "\"__metadata__\" is reserved");
  EXPECT_ERROR_CONTAINS(serialize_safetensors({{"x", Tensor()}}), "tensor 'x' is undefined");
}

TEST(Safetensors, ViewKeepsTheMappingAlive) {
  auto rng = testing::make_rng();
  TempDir dir;
  const Tensor expected = random_tensor({64, 3}, DType::BF16, rng);
  write_safetensors(dir.file("v.safetensors"), {{"w", expected}});
  Tensor view;
  {
    const SafetensorsFile file = SafetensorsFile::open(dir.file("v.safetensors"));
    view = file.read("w", DType::BF16);
  }
  std::filesystem::remove(dir.file("v.safetensors"));  // the mapping outlives the name, too
  EXPECT_TRUE(same_bytes(view, expected));
}

TEST(Safetensors, ConvertsFloatDtypesOnRead) {
  auto rng = testing::make_rng();
  const Tensor b = random_tensor({5, 7}, DType::BF16, rng);
  const Tensor f = random_tensor({33}, DType::F32, rng);
  const Tensor h = random_tensor({9}, DType::F16, rng);
  const SafetensorsFile file =
      SafetensorsFile::from_bytes(serialize_safetensors({{"b", b}, {"f", f}, {"h", h}}), "mem");

  EXPECT_FALSE(file.is_zero_copy("b", DType::F32));
  const Tensor b32 = file.read("b", DType::F32);
  ASSERT_EQ(b32.shape(), b.shape());
  for (int64_t i = 0; i < b.numel(); ++i)
    ASSERT_EQ(b32.data<float>()[i], bf16_to_float(b.data<bf16>()[i])) << i;

  const Tensor f16b = file.read("f", DType::BF16);
  for (int64_t i = 0; i < f.numel(); ++i)
    ASSERT_EQ(f16b.data<bf16>()[i].bits, float_to_bf16(f.data<float>()[i]).bits) << i;

  const Tensor h32 = file.read("h", DType::F32);
  for (int64_t i = 0; i < h.numel(); ++i)
    ASSERT_EQ(h32.data<float>()[i], f16_to_float(h.data<f16>()[i])) << i;
}

TEST(Safetensors, ReadsF64AndIntegerDtypes) {
  auto rng = testing::make_rng();
  std::normal_distribution<double> normal;
  std::vector<double> f64(6);
  for (double& v : f64) v = normal(rng);
  const std::vector<int32_t> i32 = {-7, 0, 2147483647, -2147483647 - 1};
  const std::vector<int16_t> i16 = {-300, 300};
  const std::vector<int8_t> i8 = {-128, 127, 5};
  const std::vector<uint8_t> u8 = {0, 255, 9};
  const std::vector<uint8_t> flags = {0, 1, 7};
  const std::string header =
      nlohmann::json{
          {"d", {{"dtype", "F64"}, {"shape", {2, 3}}, {"data_offsets", {0, 48}}}},
          {"i32", {{"dtype", "I32"}, {"shape", {4}}, {"data_offsets", {48, 64}}}},
          {"i16", {{"dtype", "I16"}, {"shape", {2}}, {"data_offsets", {64, 68}}}},
          {"i8", {{"dtype", "I8"}, {"shape", {3}}, {"data_offsets", {68, 71}}}},
          {"u8", {{"dtype", "U8"}, {"shape", {3}}, {"data_offsets", {71, 74}}}},
          {"flags", {{"dtype", "BOOL"}, {"shape", {3}}, {"data_offsets", {74, 77}}}},
          {"u32", {{"dtype", "U32"}, {"shape", {1}}, {"data_offsets", {77, 81}}}},
      }
          .dump();
  const std::string data = bytes_of(f64) + bytes_of(i32) + bytes_of(i16) + bytes_of(i8) +
                           bytes_of(u8) + bytes_of(flags) + std::string(4, '\x01');
  TempDir dir;
  write_file(dir.file("ints.safetensors"), safetensors_image(header, data));
  const SafetensorsFile file = SafetensorsFile::open(dir.file("ints.safetensors"));

  const Tensor d = file.read("d", DType::F32);
  EXPECT_EQ(d.shape(), (Shape{2, 3}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(d.data<float>()[i], static_cast<float>(f64[i]));
  const Tensor db = file.read("d", DType::BF16);
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(db.data<bf16>()[i].bits, float_to_bf16(static_cast<float>(f64[i])).bits);

  auto ints = [&](const std::string& name) {
    const Tensor t = file.read(name, DType::I64);
    return std::vector<int64_t>(t.data<int64_t>(), t.data<int64_t>() + t.numel());
  };
  EXPECT_EQ(ints("i32"), (std::vector<int64_t>{-7, 0, 2147483647, -2147483648LL}));
  EXPECT_EQ(ints("i16"), (std::vector<int64_t>{-300, 300}));
  EXPECT_EQ(ints("i8"), (std::vector<int64_t>{-128, 127, 5}));
  EXPECT_EQ(ints("u8"), (std::vector<int64_t>{0, 255, 9}));
  EXPECT_EQ(ints("flags"), (std::vector<int64_t>{0, 1, 1}));
  const Tensor i8f = file.read("i8", DType::F32);
  EXPECT_EQ(std::vector<float>(i8f.data<float>(), i8f.data<float>() + 3),
            (std::vector<float>{-128.0f, 127.0f, 5.0f}));

  EXPECT_EQ(file.info("u32").dtype, SafetensorsDType::U32);
  EXPECT_ERROR_CONTAINS(file.read("u32", DType::I64),
                        dir.file("ints.safetensors") + ": cannot read tensor \"u32\" (U32) as i64");
  EXPECT_ERROR_CONTAINS(file.read("d", DType::I64), "cannot read tensor \"d\" (F64) as i64");
}

// F8_E4M3 (torch.float8_e4m3fn) widens exactly: every code read as f32, bf16 and f16 gives torch's
// float32 value of it (tools/make_fixtures/make_layerwise_casting_fixtures.py wrote both), NaN as
// NaN. F8_E5M2 stays refused, naming the tensor, the dtype and the file.
TEST(Safetensors, Fp8E4M3WidensExactlyAsTorchDoesAndE5M2IsRefused) {
  const SafetensorsFile file = SafetensorsFile::open(testing::source_path(
      "tests/fixtures/flux_transformer/fp8_checkpoint/e4m3_codes.safetensors"));
  ASSERT_EQ(file.info("codes").dtype, SafetensorsDType::F8_E4M3);
  const Tensor torch_values = file.read("values", DType::F32);
  ASSERT_EQ(torch_values.numel(), 256);
  EXPECT_FALSE(file.is_zero_copy("codes", DType::F32));
  const Tensor f32 = file.read("codes", DType::F32), b16 = file.read("codes", DType::BF16),
               h16 = file.read("codes", DType::F16);
  int nans = 0;
  for (int code = 0; code < 256; ++code) {
    const float want = torch_values.data<float>()[code];
    const float got[3] = {f32.data<float>()[code], bf16_to_float(b16.data<bf16>()[code]),
                          f16_to_float(h16.data<f16>()[code])};
    for (float g : got) {
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(g)) << code;
      } else {
        EXPECT_EQ(g, want) << code;
        EXPECT_EQ(std::signbit(g), std::signbit(want)) << code;
      }
    }
    nans += std::isnan(want);
  }
  EXPECT_EQ(nans, 2);  // 0x7f and 0xff
  EXPECT_EQ(torch_values.data<float>()[0x7e], 448.0f);
  EXPECT_ERROR_CONTAINS(file.read("codes", DType::I64),
                        "cannot read tensor \"codes\" (F8_E4M3) as i64");

  const std::string header =
      nlohmann::json{{"w", {{"dtype", "F8_E5M2"}, {"shape", {2}}, {"data_offsets", {0, 2}}}}}
          .dump();
  const SafetensorsFile e5m2 =
      SafetensorsFile::from_bytes(as_bytes(safetensors_image(header, "\x3c\x40")), "e5m2");
  EXPECT_ERROR_CONTAINS(e5m2.read("w", DType::F32),
                        "e5m2: cannot read tensor \"w\" (F8_E5M2) as f32");
}

TEST(Safetensors, MisalignedDataIsCopiedNotViewed) {
  // A U8 tensor of 1 byte puts the F32 tensor after it at an odd address.
  const std::vector<float> values = {1.5f, -2.25f, 3.0f};
  const std::string header =
      nlohmann::json{
          {"pad", {{"dtype", "U8"}, {"shape", {1}}, {"data_offsets", {0, 1}}}},
          {"w", {{"dtype", "F32"}, {"shape", {3}}, {"data_offsets", {1, 13}}}},
      }
          .dump();
  const std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  const SafetensorsFile file = SafetensorsFile::from_bytes(
      as_bytes(safetensors_image(padded, "\x07" + bytes_of(values))), "odd");
  EXPECT_FALSE(file.is_zero_copy("w", DType::F32));
  const Tensor w = file.read("w", DType::F32);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w.raw_data()) % kTensorAlignment, 0u);
  EXPECT_EQ(std::vector<float>(w.data<float>(), w.data<float>() + 3), values);
  const Tensor wb = file.read("w", DType::BF16);  // the conversion path copies to align first
  for (int i = 0; i < 3; ++i) EXPECT_EQ(bf16_to_float(wb.data<bf16>()[i]), values[i]);
}

TEST(Safetensors, AcceptsTheFormatsLegalCorners) {
  // Padding after the JSON, an empty tensor, a scalar, "-0", null metadata, no tensors at all.
  const std::string header =
      R"({"__metadata__":null,"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
      R"("s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
      R"("z":{"dtype":"I8","shape":[-0, 1],"data_offsets":[4,4]}}     )";
  const SafetensorsFile file = SafetensorsFile::from_bytes(
      as_bytes(safetensors_image(header, std::string("\0\0\x80\x3f", 4))), "corners");
  EXPECT_EQ(file.size(), 3u);
  EXPECT_EQ(file.read("s", DType::F32).data<float>()[0], 1.0f);
  EXPECT_EQ(file.read("e", DType::F32).numel(), 0);
  EXPECT_EQ(file.info("z").shape, (std::vector<int64_t>{0, 1}));

  EXPECT_EQ(SafetensorsFile::from_bytes(as_bytes(safetensors_image("{}")), "none").size(), 0u);
}

TEST(Safetensors, ReadErrorsNameTheTensorAndFile) {
  const std::string header =
      nlohmann::json{
          {"seven", {{"dtype", "U8"}, {"shape", {1, 1, 1, 1, 1, 1, 1}}, {"data_offsets", {0, 1}}}},
      }
          .dump();
  TempDir dir;
  const std::string path = dir.file("seven.safetensors");
  write_file(path, safetensors_image(header, "x"));
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.info("seven").shape.size(), 7u);
  EXPECT_ERROR_CONTAINS(file.read("seven", DType::I64),
                        path + ": tensor \"seven\": shape [1, 1, 1, 1, 1, 1, 1] has 7 dims");
  EXPECT_ERROR_CONTAINS(file.read("nope", DType::F32),
                        path + ": no tensor named \"nope\" (the file holds 1 tensors)");
  EXPECT_ERROR_CONTAINS(file.info("nope"), "no tensor named \"nope\"");
  EXPECT_FALSE(file.contains("nope"));
}

TEST(Safetensors, DtypeTable) {
  const std::vector<std::string> names = {"BOOL", "U8",  "I8",  "I16",     "U16",
                                          "I32",  "U32", "I64", "U64",     "F16",
                                          "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2"};
  const std::vector<size_t> sizes = {1, 1, 1, 2, 2, 4, 4, 8, 8, 2, 2, 4, 8, 1, 1};
  for (size_t i = 0; i < names.size(); ++i) {
    const auto dtype = parse_safetensors_dtype(names[i]);
    ASSERT_TRUE(dtype.has_value()) << names[i];
    EXPECT_EQ(safetensors_dtype_name(*dtype), names[i]);
    EXPECT_EQ(safetensors_dtype_size(*dtype), sizes[i]) << names[i];
  }
  EXPECT_FALSE(parse_safetensors_dtype("f32").has_value());
  EXPECT_EQ(native_dtype(SafetensorsDType::BF16), DType::BF16);
  EXPECT_EQ(native_dtype(SafetensorsDType::F64), std::nullopt);
}

}  // namespace
}  // namespace paradiff
