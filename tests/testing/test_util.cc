#include "testing/test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>

namespace paradiff::testing {

uint64_t test_seed() {
  static const uint64_t seed = [] {
    uint64_t s;
    if (const char* env = std::getenv("PARADIFF_TEST_SEED")) {
      s = std::strtoull(env, nullptr, 10);
    } else {
      std::random_device rd;
      s = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    }
    std::fprintf(stderr, "paradiff tests: random seed %llu (set PARADIFF_TEST_SEED to repeat)\n",
                 static_cast<unsigned long long>(s));
    return s;
  }();
  return seed;
}

std::mt19937_64 make_rng() {
  std::string name = "none";
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info())
    name = std::string(info->test_suite_name()) + "." + info->name();
  return std::mt19937_64(test_seed() ^ std::hash<std::string>{}(name));
}

Tensor random_uniform(const Shape& shape, DType dtype, std::mt19937_64& rng, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<double> values(static_cast<size_t>(shape.numel()));
  for (double& v : values) v = dist(rng);
  return from_doubles(values, shape, dtype);
}

Tensor random_normal(const Shape& shape, DType dtype, std::mt19937_64& rng, float stddev) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<double> values(static_cast<size_t>(shape.numel()));
  for (double& v : values) v = dist(rng);
  return from_doubles(values, shape, dtype);
}

std::vector<double> to_doubles(const Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  dispatch_dtype(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = t.data<T>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = to_double(p[i]);
  });
  return out;
}

Tensor from_doubles(const std::vector<double>& values, const Shape& shape, DType dtype) {
  PARADIFF_CHECK(static_cast<int64_t>(values.size()) == shape.numel(),
                 "from_doubles: ", values.size(), " values for shape ", shape.to_string());
  Tensor t = Tensor::empty(shape, dtype);
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (size_t i = 0; i < values.size(); ++i) {
      if constexpr (std::is_same_v<T, int64_t>) {
        p[i] = static_cast<int64_t>(values[i]);
      } else {
        p[i] = from_float<T>(static_cast<float>(values[i]));
      }
    }
  });
  return t;
}

double relative_error(const Tensor& out, const std::vector<double>& ref) {
  PARADIFF_CHECK(static_cast<int64_t>(ref.size()) == out.numel(),
                 "relative_error: ", out.describe(), " against ", ref.size(), " reference values");
  const std::vector<double> got = to_doubles(out);
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return std::numeric_limits<double>::infinity();
    diff += (got[i] - ref[i]) * (got[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  if (norm == 0.0) return std::sqrt(diff);
  return std::sqrt(diff / norm);
}

double relative_error(const Tensor& out, const Tensor& ref) {
  PARADIFF_CHECK(out.shape() == ref.shape(), "relative_error: shapes differ, ", out.describe(),
                 " vs ", ref.describe());
  return relative_error(out, to_doubles(ref));
}

double max_abs_error(const Tensor& out, const std::vector<double>& ref) {
  const std::vector<double> got = to_doubles(out);
  double m = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return std::numeric_limits<double>::infinity();
    m = std::max(m, std::abs(got[i] - ref[i]));
  }
  return m;
}

bool all_finite(const Tensor& t) {
  for (double v : to_doubles(t))
    if (!std::isfinite(v)) return false;
  return true;
}

std::string source_path(const std::string& relative) {
  return std::string(PARADIFF_SOURCE_DIR) + "/" + relative;
}

}  // namespace paradiff::testing
