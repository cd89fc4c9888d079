// Generator against torch's own draws (tests/fixtures/generator, made by
// tools/make_fixtures/make_vae_scheduler_fixtures.py): bit for bit, for both of torch's CPU
// normal_ kernels, f32/bf16/f16, the scalar path (< 16 values) with its cached sample, tails
// that are not a multiple of 16, and diffusers' randn_tensor with a list of generators.
#include "paradiff/core/random.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "paradiff/io/json_config.h"
#include "paradiff/io/safetensors.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

std::string fixture(const std::string& name) {
  return testing::source_path("tests/fixtures/generator/" + name);
}

uint64_t fnv1a64(const Tensor& t) {
  uint64_t h = 0xCBF29CE484222325ull;
  const auto* p = static_cast<const unsigned char*>(t.raw_data());
  for (size_t i = 0; i < t.nbytes(); ++i) h = (h ^ p[i]) * 0x100000001B3ull;
  return h;
}

DType dtype_of_name(const std::string& name) {
  if (name == "float32") return DType::F32;
  if (name == "bfloat16") return DType::BF16;
  if (name == "float16") return DType::F16;
  throw Error("unknown dtype " + name);
}

// Bitwise comparison of `count` values of `ours` (any float dtype, as f32) from `offset`.
void expect_bitwise(const Tensor& ours, int64_t offset, const Tensor& expected,
                    const std::string& what) {
  const Tensor mine = ours.reshape({-1}).to(DType::F32);
  int64_t mismatches = 0, first = -1;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    if (std::memcmp(&mine.data<float>()[offset + i], &expected.data<float>()[i], 4) != 0) {
      if (first < 0) first = offset + i;
      ++mismatches;
    }
  }
  EXPECT_EQ(mismatches, 0) << what << ": first mismatch at element " << first;
}

struct Fixture {
  nlohmann::json cases;
  SafetensorsFile values;
};

const Fixture& fixture_data() {
  static const Fixture f{JsonConfig::load(fixture("cases.json")).root().at("cases"),
                         SafetensorsFile::open(fixture("values.safetensors"))};
  return f;
}

Shape shape_of(const nlohmann::json& dims) {
  std::vector<int64_t> d;
  for (const auto& v : dims) d.push_back(v.get<int64_t>());
  return Shape(d);
}

void check_call(const Tensor& ours, const nlohmann::json& call, const std::string& key) {
  const auto& values = fixture_data().values;
  const std::string what = key;
  ASSERT_EQ(ours.shape(), shape_of(call.at("shape"))) << what;
  ASSERT_EQ(ours.dtype(), dtype_of_name(call.at("dtype").get<std::string>())) << what;
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a64(ours)));
  EXPECT_EQ(std::string(hash), call.at("fnv1a64").get<std::string>())
      << what << " (hash of all " << ours.numel() << " values)";
  if (call.at("stored") == "full") {
    expect_bitwise(ours, 0, values.read(key, DType::F32), what);
  } else {
    expect_bitwise(ours, 0, values.read(key + ".head", DType::F32), what + " head");
    const Tensor tail = values.read(key + ".tail", DType::F32);
    expect_bitwise(ours, ours.numel() - tail.numel(), tail, what + " tail");
  }
}

TEST(Generator, MatchesTorchBitForBit) {
  int checked = 0;
  for (const auto& c : fixture_data().cases) {
    if (c.contains("seeds")) continue;  // the list-of-generators case below
    const std::string name = c.at("name"), kernel_name = c.at("kernel");
    const TorchCpuKernel kernel =
        kernel_name == "avx2" ? TorchCpuKernel::Avx2 : TorchCpuKernel::Default;
    Generator g = c.at("seed").is_null()
                      ? Generator(Generator::kDefaultSeed, kernel)
                      : Generator(std::stoull(c.at("seed").get<std::string>()), kernel);
    const auto& calls = c.at("calls");
    for (size_t k = 0; k < calls.size(); ++k) {
      SCOPED_TRACE(name + " (" + kernel_name + ") call " + std::to_string(k));
      const Tensor ours = g.randn(shape_of(calls[k].at("shape")),
                                  dtype_of_name(calls[k].at("dtype").get<std::string>()));
      check_call(ours, calls[k], str_cat(name, ".", kernel_name, ".", k));
      ++checked;
    }
  }
  EXPECT_GE(checked, 25);
}

TEST(Generator, RandnTensorWithAListOfGenerators) {
  for (const auto& c : fixture_data().cases) {
    if (!c.contains("seeds")) continue;
    std::vector<Generator> gens;
    for (const auto& s : c.at("seeds")) gens.emplace_back(std::stoull(s.get<std::string>()));
    const auto& call = c.at("calls").at(0);
    const Tensor ours = randn_tensor(shape_of(call.at("shape")), gens);
    check_call(ours, call, c.at("name").get<std::string>() + ".avx2.0");
    // Entry b is what generator b alone draws for a batch of one.
    Generator second(std::stoull(c.at("seeds")[1].get<std::string>()));
    std::vector<int64_t> dims = ours.shape().to_vector();
    dims[0] = 1;
    const Tensor alone = second.randn(Shape(dims));
    EXPECT_EQ(std::memcmp(alone.raw_data(), ours.slice(1, 1).raw_data(), alone.nbytes()), 0);
    return;
  }
  FAIL() << "no list-of-generators case in the fixture";
}

TEST(Generator, SingleGeneratorBatchIsOneStream) {
  // randn_tensor with one generator is one randn over the whole batch: entry 1 continues the
  // stream (here the per-entry size is a multiple of 16, so it is exactly the next draws).
  Generator a(5), b(5);
  const Tensor batch = randn_tensor({2, 16, 4, 4}, a);
  const Tensor first = b.randn({1, 16, 4, 4});
  const Tensor second = b.randn({1, 16, 4, 4});
  EXPECT_EQ(std::memcmp(batch.raw_data(), first.raw_data(), first.nbytes()), 0);
  EXPECT_EQ(std::memcmp(batch.slice(1, 1).raw_data(), second.raw_data(), second.nbytes()), 0);
  // A list of one generator behaves as the generator itself.
  std::vector<Generator> one{Generator(5)};
  const Tensor listed = randn_tensor({2, 16, 4, 4}, one);
  EXPECT_EQ(std::memcmp(listed.raw_data(), batch.raw_data(), batch.nbytes()), 0);
}

TEST(Generator, ManualSeedRestartsTheStreamAndTheCache) {
  Generator g(3);
  const Tensor a = g.randn({7});  // leaves a cached scalar sample
  g.manual_seed(3);
  const Tensor b = g.randn({7});
  EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0);
  EXPECT_EQ(g.initial_seed(), 3u);
}

TEST(Generator, RejectsWhatTorchRejects) {
  Generator g(1);
  EXPECT_THROW(g.randn({4}, DType::I64), Error);
  std::vector<Generator> two{Generator(1), Generator(2)};
  try {
    randn_tensor({3, 4}, two);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("one generator per batch entry"), std::string::npos)
        << e.what();
  }
  std::vector<Generator> none;
  EXPECT_THROW(randn_tensor({1, 4}, none), Error);
}

}  // namespace
}  // namespace paradiff
