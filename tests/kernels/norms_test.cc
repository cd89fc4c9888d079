// LayerNorm (+ adaLN modulation), RMSNorm and RoPE against double-precision references.
#include <gtest/gtest.h>

#include <span>

#include "elementwise_reference.h"
#include "paradiff/kernels/layer_norm.h"
#include "paradiff/kernels/modulation.h"
#include "paradiff/kernels/rms_norm.h"
#include "paradiff/kernels/rope.h"
#include "testing/test_util.h"

namespace paradiff::kernels {
namespace {

using testing::make_rng;
using testing::random_normal;
using testing::random_uniform;
using testing::relative_error;
using testing::to_doubles;

// fp32 output: within fp32 rounding of the double reference; bf16 output: within bf16 rounding.
double tolerance(DType out) {
  return out == DType::F32 ? 2e-6 : 6e-3;
}

class NormTest : public ::testing::TestWithParam<DType> {};

TEST_P(NormTest, LayerNormModulateMatchesReference) {
  const DType out_dtype = GetParam();
  auto rng = make_rng();
  for (auto [b, s, c] : {std::tuple{1, 1, 1}, {2, 7, 33}, {1, 13, 3072}, {3, 5, 129}}) {
    // An offset mean and a large scale: the two-pass variance must not lose precision.
    Tensor x = random_normal({b, s, c}, DType::F32, rng, 3.0f);
    for (float& v : std::span(x.data<float>(), x.numel())) v += 50.0f;
    Tensor shift = random_uniform({b, c}, DType::F32, rng);
    Tensor scale = random_uniform({b, c}, DType::F32, rng);
    Tensor out = Tensor::empty(x.shape(), out_dtype);
    layer_norm_modulate(x, shift, scale, 1e-6f, out);
    const auto xs = to_doubles(x), sh = to_doubles(shift), sc = to_doubles(scale);
    std::vector<double> ref(xs.size());
    for (int64_t r = 0; r < b * s; ++r) {
      reference::layer_norm_row(&xs[r * c], c, 1e-6, &ref[r * c]);
      for (int64_t i = 0; i < c; ++i)
        ref[r * c + i] = ref[r * c + i] * (1 + sc[(r / s) * c + i]) + sh[(r / s) * c + i];
    }
    EXPECT_LE(relative_error(out, ref), tolerance(out_dtype)) << b << "x" << s << "x" << c;

    // Without modulation: plain LayerNorm, through both entry points.
    Tensor plain = Tensor::empty(x.shape(), out_dtype);
    layer_norm(x, 1e-6f, plain);
    for (int64_t r = 0; r < b * s; ++r) reference::layer_norm_row(&xs[r * c], c, 1e-6, &ref[r * c]);
    EXPECT_LE(relative_error(plain, ref), tolerance(out_dtype));
    layer_norm_modulate(x, Tensor(), Tensor(), 1e-6f, plain);
    EXPECT_LE(relative_error(plain, ref), tolerance(out_dtype));
  }
}

TEST_P(NormTest, RmsNormMatchesReference) {
  const DType out_dtype = GetParam();
  auto rng = make_rng();
  for (int64_t d : {1, 24, 128, 131}) {
    Tensor x = random_normal({2, 9, 3, d}, DType::F32, rng, 2.0f);
    Tensor w = random_uniform({d}, DType::F32, rng, 0.5f, 1.5f);
    Tensor out = Tensor::empty(x.shape(), out_dtype);
    rms_norm(x, w, 1e-6f, out);
    const auto xs = to_doubles(x), ws = to_doubles(w);
    std::vector<double> ref(xs.size());
    for (size_t r = 0; r < xs.size() / d; ++r)
      reference::rms_norm_row(&xs[r * d], ws.data(), d, 1e-6, &ref[r * d]);
    EXPECT_LE(relative_error(out, ref), tolerance(out_dtype)) << "d=" << d;
  }
}

TEST_P(NormTest, RopeAndFusedRmsNormRopeMatchReference) {
  const DType out_dtype = GetParam();
  auto rng = make_rng();
  const int64_t b = 2, s = 11, h = 3;
  // d = 24: the generic loop; d = 128 and 48: whole vectors (the AVX-512 row kernel). Inputs in
  // f32 and in bf16 (read exactly).
  for (int64_t d : {24, 128, 48}) {
    for (DType in_dtype : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(::testing::Message() << "d=" << d << " in " << dtype_name(in_dtype));
      Tensor x = random_normal({b, s, h, d}, DType::F32, rng).to(in_dtype);
      Tensor w = random_uniform({d}, DType::F32, rng, 0.5f, 1.5f);
      // Tables as FluxPosEmbed builds them: one angle per pair, repeated for both members.
      Tensor cos = Tensor::empty({s, d}, DType::F32), sin = Tensor::empty({s, d}, DType::F32);
      std::uniform_real_distribution<double> angle(-10, 10);
      for (int64_t i = 0; i < s * d; i += 2) {
        const double a = angle(rng);
        cos.data<float>()[i] = cos.data<float>()[i + 1] = static_cast<float>(std::cos(a));
        sin.data<float>()[i] = sin.data<float>()[i + 1] = static_cast<float>(std::sin(a));
      }
      const auto xs = to_doubles(x), ws = to_doubles(w), cs = to_doubles(cos), sn = to_doubles(sin);
      std::vector<double> ref(xs.size()), normed(d);
      for (int64_t r = 0; r < b * s * h; ++r) {
        const int64_t si = (r / h) % s;
        reference::rope_row(&xs[r * d], &cs[si * d], &sn[si * d], d, &ref[r * d]);
      }
      Tensor out = Tensor::empty(x.shape(), out_dtype);
      apply_rope(x, cos, sin, out);
      EXPECT_LE(relative_error(out, ref), tolerance(out_dtype));

      for (int64_t r = 0; r < b * s * h; ++r) {
        const int64_t si = (r / h) % s;
        reference::rms_norm_row(&xs[r * d], ws.data(), d, 1e-6, normed.data());
        reference::rope_row(normed.data(), &cs[si * d], &sn[si * d], d, &ref[r * d]);
      }
      rms_norm_rope(x, w, 1e-6f, cos, sin, out);
      EXPECT_LE(relative_error(out, ref), tolerance(out_dtype));
    }
  }
}

TEST_P(NormTest, ModulateAndGatedResidualMatchReference) {
  const DType dtype = GetParam();
  auto rng = make_rng();
  const int64_t b = 2, s = 19, c = 67;
  Tensor x = random_normal({b, s, c}, DType::F32, rng);
  Tensor shift = random_uniform({b, c}, DType::F32, rng),
         scale = random_uniform({b, c}, DType::F32, rng);
  Tensor out = Tensor::empty(x.shape(), dtype);
  modulate(x, shift, scale, out);
  const auto xs = to_doubles(x), sh = to_doubles(shift), sc = to_doubles(scale);
  std::vector<double> ref(xs.size());
  for (int64_t i = 0; i < b * s * c; ++i) {
    const int64_t bc = (i / (s * c)) * c + i % c;
    ref[i] = xs[i] * (1 + sc[bc]) + sh[bc];
  }
  EXPECT_LE(relative_error(out, ref), tolerance(dtype));

  Tensor y = random_normal({b, s, c}, dtype, rng);
  const auto ys = to_doubles(y);
  for (int64_t i = 0; i < b * s * c; ++i) {
    const int64_t bc = (i / (s * c)) * c + i % c;
    ref[i] = xs[i] + sh[bc] * ys[i];
  }
  gated_residual_add(x, shift, y);  // the shift table doubles as a gate here
  EXPECT_LE(relative_error(x, ref), 2e-6);
}

INSTANTIATE_TEST_SUITE_P(OutputDtypes, NormTest, ::testing::Values(DType::F32, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(Norms, InPlaceF32IsAllowed) {
  auto rng = make_rng();
  Tensor x = random_normal({1, 5, 16}, DType::F32, rng);
  Tensor expected = Tensor::empty(x.shape(), DType::F32);
  layer_norm(x, 1e-6f, expected);
  layer_norm(x, 1e-6f, x);
  EXPECT_LE(relative_error(x, expected), 0.0);
}

TEST(Norms, RejectBadShapesWithMessages) {
  Tensor x = Tensor::zeros({2, 3, 8}, DType::F32);
  Tensor out = Tensor::empty({2, 3, 8}, DType::F32);
  try {
    layer_norm_modulate(x, Tensor::zeros({2, 7}, DType::F32), Tensor::zeros({2, 8}, DType::F32),
                        1e-6f, out);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("adaLN shift: expected shape [2, 8], got [2, 7]"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(rms_norm(x, Tensor::zeros({7}, DType::F32), 1e-6f, out), Error);
  Tensor odd = Tensor::zeros({1, 2, 1, 3}, DType::F32), odd_out = odd.clone();
  EXPECT_THROW(apply_rope(odd, Tensor::zeros({2, 3}, DType::F32), Tensor::zeros({2, 3}, DType::F32),
                          odd_out),
               Error);
  Tensor wrong = Tensor::empty({2, 3, 9}, DType::F32);
  EXPECT_THROW(layer_norm(x, 1e-6f, wrong), Error);
  Tensor ints = Tensor::zeros({2, 3, 8}, DType::I64);
  EXPECT_THROW(layer_norm(ints, 1e-6f, out), Error);
}

TEST(Norms, NanInInputIsNotHidden) {
  Tensor x = Tensor::zeros({1, 2, 8}, DType::F32);
  x.data<float>()[3] = NAN;
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  layer_norm(x, 1e-6f, out);
  EXPECT_FALSE(testing::all_finite(out));
}

}  // namespace
}  // namespace paradiff::kernels
