// QwenImageTransformer2DModel against diffusers' own outputs
// (tests/fixtures/qwen_image_transformer, made by
// tools/make_fixtures/make_qwen_image_transformer_fixtures.py) in fp32 and bf16 compute; the text
// mask's semantics; configs and inputs that must be refused, with their messages.
#include "paradiff/models/qwen_image/qwen_image_transformer.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "paradiff/io/safetensors.h"
#include "testing/test_util.h"

namespace paradiff::models::qwen_image {
namespace {

std::string fixture(const std::string& name) {
  return testing::source_path("tests/fixtures/qwen_image_transformer/" + name);
}

Tensor expected_sample(const std::string& dir) {
  return SafetensorsFile::open(dir + "/output.safetensors").read("sample", DType::F32);
}

// Expects `fn` to throw an Error whose message contains `needle`.
template <typename Fn>
void expect_error(Fn&& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message '" << e.what() << "' does not mention '" << needle << "'";
  }
}

class QwenImageFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(QwenImageFixtureTest, MatchesDiffusersInF32AndBf16) {
  const std::string dir = fixture(GetParam());
  const auto inputs = QwenImageTransformerInputs::load(dir + "/inputs.safetensors");
  const Tensor expected = expected_sample(dir);
  for (DType compute : {DType::F32, DType::BF16}) {
    const auto model = QwenImageTransformer2DModel::from_pretrained(dir + "/transformer", compute);
    const Tensor sample = model.forward(inputs);
    ASSERT_EQ(sample.shape(), expected.shape());
    const double err = testing::relative_error(sample, expected);
    std::printf("  %s, %s compute: relative error %.3g\n", GetParam().c_str(),
                std::string(dtype_name(compute)).c_str(), err);
    EXPECT_LE(err, compute == DType::F32 ? 1e-4 : 2e-2)
        << GetParam() << " with " << dtype_name(compute) << " compute";
  }
}

INSTANTIATE_TEST_SUITE_P(Diffusers, QwenImageFixtureTest,
                         ::testing::Values("tiny", "heads3_nonsquare", "mask_batch3",
                                           "large_positions"));

QwenImageTransformerConfig small_config() {
  QwenImageTransformerConfig c;
  c.in_channels = 8;
  c.out_channels = 2;
  c.num_layers = 1;
  c.attention_head_dim = 8;
  c.num_attention_heads = 2;
  c.joint_attention_dim = 12;
  c.axes_dims_rope = {2, 2, 4};
  return c;
}

QwenImageTransformerInputs small_inputs(const QwenImageTransformerConfig& c, int64_t batch,
                                        int64_t text, std::mt19937_64& rng) {
  QwenImageTransformerInputs in;
  in.hidden_states = testing::random_normal({batch, 12, c.in_channels}, DType::F32, rng);
  in.encoder_hidden_states =
      testing::random_normal({batch, text, c.joint_attention_dim}, DType::F32, rng);
  in.timestep = testing::random_uniform({batch}, DType::F32, rng, 0.0f, 1.0f);
  in.img_shapes.assign(static_cast<size_t>(batch), {{1, 3, 4}});
  return in;
}

TEST(QwenImageTransformer, MaskedTextIsIgnoredAndAMaskOfOnesIsNoMask) {
  auto rng = testing::make_rng();
  const auto c = small_config();
  const auto model = QwenImageTransformer2DModel::with_random_weights(c, DType::F32, rng());
  auto in = small_inputs(c, 2, 6, rng);
  const Tensor unmasked = model.forward(in);
  in.encoder_hidden_states_mask = Tensor::zeros({2, 6}, DType::F32);
  for (int64_t i = 0; i < 12; ++i) in.encoder_hidden_states_mask.data<float>()[i] = 1.0f;
  EXPECT_EQ(testing::relative_error(model.forward(in), unmasked), 0.0);

  // Element 0 keeps tokens 0, 2, 3; element 1 none. Masked rows may hold anything.
  float* m = in.encoder_hidden_states_mask.data<float>();
  for (int64_t j : {1, 4, 5}) m[j] = 0.0f;
  for (int64_t j = 6; j < 12; ++j) m[j] = 0.0f;
  const Tensor masked = model.forward(in);
  EXPECT_GT(testing::relative_error(masked, unmasked), 1e-3);  // the mask matters
  float* e = in.encoder_hidden_states.data<float>();
  for (int64_t j : {1, 4, 5, 6, 7, 8, 9, 10, 11})
    for (int64_t k = 0; k < c.joint_attention_dim; ++k) e[j * c.joint_attention_dim + k] = 1e3f;
  EXPECT_EQ(testing::relative_error(model.forward(in), masked), 0.0);

  // Deprecated txt_seq_lens is accepted and changes nothing.
  in.txt_seq_lens = {4, 0};
  EXPECT_EQ(testing::relative_error(model.forward(in), masked), 0.0);
}

TEST(QwenImageTransformer, BatchElementsAreIndependent) {
  auto rng = testing::make_rng();
  const auto c = small_config();
  const auto model = QwenImageTransformer2DModel::with_random_weights(c, DType::F32, rng());
  const auto in = small_inputs(c, 2, 5, rng);
  const Tensor both = model.forward(in);
  QwenImageTransformerInputs second = in;
  second.hidden_states = in.hidden_states.slice(1, 1).clone();
  second.encoder_hidden_states = in.encoder_hidden_states.slice(1, 1).clone();
  second.timestep = in.timestep.slice(1, 1).clone();
  second.img_shapes.resize(1);
  EXPECT_LE(testing::relative_error(model.forward(second), both.slice(1, 1).clone()), 1e-6);
}

TEST(QwenImageTransformerConfig, RefusesBadConfigsNamingTheKey) {
  auto parse = [](const std::string& text) {
    return QwenImageTransformerConfig::from_json(JsonConfig::parse(text, "cfg.json"));
  };
  expect_error([&] { parse(R"({"attention_head_dim": 16, "axes_dims_rope": [8, 4, 2]})"); },
               "axes_dims_rope must sum to attention_head_dim (16), they sum to 14");
  expect_error([&] { parse(R"({"attention_head_dim": 16, "axes_dims_rope": [8, 8]})"); },
               "axes_dims_rope must have 3 entries");
  expect_error([&] { parse(R"({"attention_head_dim": 16, "axes_dims_rope": [8, 5, 3]})"); },
               "positive even number, got 5");
  expect_error([&] { parse(R"({"guidance_embeds": true})"); }, "'guidance_embeds' is true");
  expect_error([&] { parse(R"({"zero_cond_t": true})"); }, "Edit-2511");
  expect_error([&] { parse(R"({"use_layer3d_rope": true})"); }, "Layered");
  expect_error([&] { parse(R"({"num_attention_heads": 0})"); }, "num_attention_heads");
  expect_error([&] { parse(R"({"in_channels": "64"})"); }, "in_channels");
  // null out_channels means in_channels, as diffusers reads it; pooled_projection_dim ignored.
  const auto c =
      parse(R"({"in_channels": 32, "out_channels": null, "pooled_projection_dim": 768})");
  EXPECT_EQ(c.out_channels, 32);
  EXPECT_EQ(c.output_channels(), 128);
}

TEST(QwenImageTransformer, RefusesBadInputsNamingThem) {
  auto rng = testing::make_rng();
  const auto c = small_config();
  const auto model = QwenImageTransformer2DModel::with_random_weights(c, DType::F32, rng());
  const auto good = small_inputs(c, 1, 5, rng);
  auto with = [&](auto change) {
    auto in = good;
    change(in);
    return [&model, in] { model.forward(in); };
  };
  expect_error(with([](auto& in) {
                 in.hidden_states = Tensor::zeros({1, 12, 7}, DType::F32);
               }),
               "hidden_states must be (B, S_img, 8)");
  expect_error(with([](auto& in) { in.encoder_hidden_states = Tensor(); }),
               "'encoder_hidden_states' is missing");
  expect_error(with([](auto& in) {
                 in.encoder_hidden_states_mask = Tensor::zeros({1, 4}, DType::F32);
               }),
               "encoder_hidden_states_mask");
  expect_error(with([](auto& in) { in.timestep = Tensor::zeros({2}, DType::F32); }), "timestep");
  expect_error(with([](auto& in) { in.img_shapes.clear(); }),
               "img_shapes must have one entry per batch element (1), got 0");
  expect_error(with([](auto& in) {
                 in.img_shapes[0] = {{1, 4, 4}};
               }),
               "img_shapes[0] describes 16 image tokens, but hidden_states has 12");
  expect_error(with([](auto& in) { in.img_shapes[0] = {{1, 0, 4}}; }), "must be positive");
  expect_error(with([](auto& in) { in.txt_seq_lens = {9}; }), "txt_seq_lens entry 9");
  expect_error(
      with([&](auto& in) {
        in.encoder_hidden_states = Tensor::zeros({1, 4095, c.joint_attention_dim}, DType::F32);
      }),
      "exceeds the 4096 positions");
  expect_error([] { QwenImageTransformer2DModel::from_pretrained("/no/such/folder", DType::F32); },
               "/no/such/folder");
}

TEST(QwenImageRope, PositionsAreCentredAsDiffusersComputesThem) {
  // h = 5, w = 2: rows -3..1, columns -1..0; text starts at max(5/2, 2/2) = 2.
  const Tensor p = image_positions({{1, 5, 2}});
  ASSERT_EQ(p.shape(), (Shape{10, 3}));
  EXPECT_EQ(p.data<float>()[0 * 3 + 1], -3.0f);
  EXPECT_EQ(p.data<float>()[0 * 3 + 2], -1.0f);
  EXPECT_EQ(p.data<float>()[9 * 3 + 1], 1.0f);
  EXPECT_EQ(p.data<float>()[9 * 3 + 2], 0.0f);
  EXPECT_EQ(text_position_start({{1, 5, 2}}), 2);
  // A second image gets frame index 1.
  EXPECT_EQ(image_positions({{1, 1, 1}, {1, 1, 1}}).data<float>()[3], 1.0f);
  const Tensor t = text_positions({0, 3}, 2);
  EXPECT_EQ(t.data<float>()[3], 5.0f);
  EXPECT_EQ(t.data<float>()[5], 5.0f);
}

}  // namespace
}  // namespace paradiff::models::qwen_image
