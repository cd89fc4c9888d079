// Embedding lookups: rows copied exactly (bf16 widens exactly to f32), ids checked.
#include "paradiff/kernels/embedding.h"

#include <gtest/gtest.h>

#include <cmath>

#include "testing/test_util.h"

namespace paradiff::kernels {
namespace {

using testing::make_rng;
using testing::random_uniform;
using testing::relative_error;
using testing::to_doubles;

class EmbeddingTest : public ::testing::TestWithParam<DType> {};

TEST_P(EmbeddingTest, CopiesTheRowsOfTheIds) {
  auto rng = make_rng();
  const int64_t n = 11, c = 37;
  const Tensor table = random_uniform({n, c}, GetParam(), rng, -3.0f, 3.0f);
  const std::vector<int64_t> picks{3, 0, 10, 3, 7};
  Tensor ids = Tensor::empty({static_cast<int64_t>(picks.size())}, DType::I64);
  std::copy(picks.begin(), picks.end(), ids.data<int64_t>());
  Tensor out = Tensor::empty({ids.dim(0), c}, DType::F32);
  embedding(table, ids, out);
  const auto rows = to_doubles(table);
  std::vector<double> want;
  for (int64_t id : picks)
    want.insert(want.end(), rows.begin() + id * c, rows.begin() + (id + 1) * c);
  EXPECT_EQ(relative_error(out, want), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, EmbeddingTest, ::testing::Values(DType::F32, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(Embedding, RefusesIdsOutsideTheTableAndWrongShapes) {
  const Tensor table = Tensor::zeros({4, 8}, DType::F32);
  Tensor ids = Tensor::zeros({2}, DType::I64);
  ids.data<int64_t>()[1] = 4;
  Tensor out = Tensor::empty({2, 8}, DType::F32);
  try {
    embedding(table, ids, out);
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("id 4 at 1 is outside the table's 4 rows"),
              std::string::npos)
        << e.what();
  }
  Tensor wrong = Tensor::empty({2, 7}, DType::F32);
  EXPECT_THROW(embedding(table, Tensor::zeros({2}, DType::I64), wrong), Error);
  EXPECT_THROW(embedding(table, Tensor::zeros({2}, DType::F32), out), Error);
}

TEST(TimestepEmbedding, MatchesDoubleReference) {
  auto rng = make_rng();
  const Tensor t = random_uniform({5}, DType::F32, rng, 0.0f, 1000.0f);
  const int64_t c = 256, half = c / 2;
  Tensor out = Tensor::empty({5, c}, DType::F32);
  timestep_embedding(t, out);
  std::vector<double> want;
  for (double ti : to_doubles(t)) {
    std::vector<double> row(c);
    for (int64_t k = 0; k < half; ++k) {
      const double arg = ti * std::exp(-std::log(10000.0) * k / half);
      row[k] = std::cos(arg);
      row[half + k] = std::sin(arg);
    }
    want.insert(want.end(), row.begin(), row.end());
  }
  // f32 steps: the argument (up to 1000 rad) carries ~1e-4 of rounding.
  EXPECT_LE(testing::max_abs_error(out, want), 2e-4);
  Tensor odd = Tensor::empty({5, 7}, DType::F32);
  EXPECT_THROW(timestep_embedding(t, odd), Error);
}

}  // namespace
}  // namespace paradiff::kernels
