// num_images_per_prompt under data parallelism: the (prompt, image) pairs are split between
// replicas (split_between_processes over the pairs), so one prompt's images may run on two
// replicas; two replicas x 2 images x 3 prompts must equal the single-process engine, in the
// same order, and each replica must have run its own three images.
#include <gtest/gtest.h>

#include <cstdio>

#include "mpi_world.h"
#include "paradiff/dist/self_communicator.h"
#include "paradiff/engine/engine.h"
#include "paradiff/parallel/data_parallel.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

TEST(NumImagesParallel, TwoReplicasEqualTheSingleProcessEngine) {
  auto& world = testing::world();
  if (world.size() % 2 != 0) GTEST_SKIP() << "two replicas need an even world";
  const std::string model = testing::source_path("tests/fixtures/flux_pipeline/tiny");
  parallel::ParallelConfig config;  // two replicas, each context parallel over the rest
  if (world.size() > 2)
    config.context_parallel_config =
        parallel::ContextParallelConfig{1, world.size() / 2, true, "p2p"};
  engine::Engine engine(world, engine::EngineOptions{model, DType::F32, config, {}});
  ASSERT_EQ(engine.replicas(), 2);
  engine::GenerationRequest request;
  request.prompt = {"a red circle", "a blue square", "a green triangle"};
  request.num_images_per_prompt = 2;
  request.height = 32, request.width = 32;
  request.num_inference_steps = 2;
  request.max_sequence_length = 8;
  request.seed = 6;
  request.output_type = engine::OutputType::Latent;
  std::vector<int64_t> seen;
  const auto result =
      engine.run(request, [&](const pipeline::StepProgress&, const std::vector<int64_t>& prompts) {
        seen = prompts;
        return true;
      });
  // Six pairs, three per replica: replica 0 runs prompt 0's two images and prompt 1's first,
  // replica 1 prompt 1's second and prompt 2's two.
  const int replica = engine.mesh().index(parallel::MeshDim::Data);
  EXPECT_EQ(result.stats.prompts_here, 3);
  EXPECT_EQ(seen, replica == 0 ? (std::vector<int64_t>{0, 0, 1}) : (std::vector<int64_t>{1, 2, 2}));
  if (world.rank() != 0) {
    EXPECT_TRUE(result.images.empty());
    return;
  }
  dist::SelfCommunicator self;
  engine::Engine single(self, engine::EngineOptions{model, DType::F32, {}, {}});
  const auto reference = single.run(request);
  ASSERT_EQ(result.images.size(), 6u);
  ASSERT_EQ(reference.images.size(), 6u);
  for (size_t j = 0; j < 6; ++j) {
    EXPECT_EQ(result.images[j].index, static_cast<int64_t>(j / 2));
    EXPECT_EQ(result.images[j].image_index, static_cast<int64_t>(j % 2));
    const double err =
        testing::relative_error(result.images[j].latents, reference.images[j].latents);
    std::printf("  2 replicas, prompt %zu image %zu: latents relative error %.3g\n", j / 2, j % 2,
                err);
    EXPECT_LE(err, 1e-5);
  }
}

}  // namespace
}  // namespace paradiff
