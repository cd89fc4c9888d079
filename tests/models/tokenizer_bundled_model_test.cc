// The text side of the bundled model (models/tiny-flux-shapes, trained by tools/train_tiny_flux)
// as FluxPipeline runs it: both tokenizers and both text encoders load from the pipeline folder,
// and prompts go through them in fp32 and bf16. Skipped when the folder is absent. Exact
// agreement with diffusers' FluxPipeline.encode_prompt on such a folder was checked by hand (see
// tests/fixtures/text_encoders/README.md); the fixtures' tests pin the exact values.
#include <gtest/gtest.h>

#include <filesystem>

#include "paradiff/models/clip/clip_text_model.h"
#include "paradiff/models/t5/t5_encoder_model.h"
#include "paradiff/models/tokenizers/clip_tokenizer.h"
#include "paradiff/models/tokenizers/t5_tokenizer.h"
#include "testing/test_util.h"

namespace paradiff::models {
namespace {

TEST(BundledModel, TextEncodersRunOnTheirTokenizers) {
  const std::string folder = testing::source_path("models/tiny-flux-shapes");
  if (!std::filesystem::exists(folder + "/tokenizer_2"))
    GTEST_SKIP() << folder << " is not there (see tools/train_tiny_flux)";
  const std::vector<std::string> prompts = {
      "a large red circle in the top left corner on a white background",
      "A Huge Red Circle, 42 zebras!", "  two   spaces\tand tab  ", ""};
  const auto clip_tok = tokenizers::CLIPTokenizer::from_pretrained(folder + "/tokenizer");
  const auto t5_tok = tokenizers::T5Tokenizer::from_pretrained(folder + "/tokenizer_2");
  const Tensor clip_ids = clip_tok.encode_batch(prompts);
  const Tensor t5_ids = t5_tok.encode_batch(prompts, 32);
  ASSERT_EQ(clip_ids.shape(), Shape({4, 77}));
  EXPECT_EQ(clip_ids.data<int64_t>()[0], clip_tok.bos_token_id());
  EXPECT_EQ(t5_ids.data<int64_t>()[3 * 32], t5_tok.eos_token_id());  // "" -> </s> <pad>...

  Tensor pooled[2], embeds[2];
  for (int i = 0; i < 2; ++i) {
    const DType compute = i == 0 ? DType::F32 : DType::BF16;
    const auto clip = clip::CLIPTextModel::from_pretrained(folder + "/text_encoder", compute);
    const auto t5 = t5::T5EncoderModel::from_pretrained(folder + "/text_encoder_2", compute);
    pooled[i] = clip.forward(clip_ids).pooler_output;
    embeds[i] = t5.forward(t5_ids);
    EXPECT_TRUE(testing::all_finite(pooled[i]));
    EXPECT_TRUE(testing::all_finite(embeds[i]));
  }
  EXPECT_LE(testing::relative_error(pooled[1], pooled[0]), 2e-2);
  EXPECT_LE(testing::relative_error(embeds[1], embeds[0]), 2e-2);
}

}  // namespace
}  // namespace paradiff::models
