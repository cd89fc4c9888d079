// GenerationRequest::seeds (one seed per prompt, as the server batches requests): each prompt's
// images start from its own seed's draw, so the batch gives each prompt the latents its own
// run with that seed gives; a count that is neither zero nor one per prompt is refused.
#include <gtest/gtest.h>

#include "paradiff/dist/self_communicator.h"
#include "paradiff/engine/engine.h"
#include "testing/test_util.h"

namespace paradiff::engine {
namespace {

GenerationRequest request(std::vector<std::string> prompts, uint64_t seed) {
  GenerationRequest r;
  r.prompt = std::move(prompts);
  r.height = 16, r.width = 16;
  r.num_inference_steps = 2;
  r.max_sequence_length = 8;
  r.num_images_per_prompt = 2;
  r.seed = seed;
  r.output_type = OutputType::Latent;
  return r;
}

TEST(EngineSeeds, EachPromptStartsFromItsOwnSeed) {
  dist::SelfCommunicator world;
  Engine engine(
      world,
      EngineOptions{testing::source_path("tests/fixtures/flux_pipeline/tiny"), DType::F32, {}, {}});
  // Two copies of one prompt: the conditioning rows are equal, so only the seeds set them apart.
  GenerationRequest both = request({"a red circle", "a red circle"}, 0);
  both.seeds = {7, 9};
  const auto batched = engine.run(both);
  ASSERT_EQ(batched.images.size(), 4u);
  const auto seven = engine.run(request({"a red circle", "a red circle"}, 7));
  const auto nine = engine.run(request({"a red circle", "a red circle"}, 9));
  for (int k = 0; k < 2; ++k) {
    SCOPED_TRACE(k);
    EXPECT_EQ(testing::relative_error(batched.images[k].latents, seven.images[k].latents), 0.0);
    EXPECT_EQ(testing::relative_error(batched.images[2 + k].latents, nine.images[2 + k].latents),
              0.0);
  }
  EXPECT_GT(testing::relative_error(batched.images[0].latents, batched.images[2].latents), 0.01);

  GenerationRequest wrong = request({"a", "b"}, 0);
  wrong.seeds = {1, 2, 3};
  try {
    engine.run(wrong);
    ADD_FAILURE() << "three seeds for two prompts were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("seeds must be empty or one per prompt: got 3 for 2"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace paradiff::engine
