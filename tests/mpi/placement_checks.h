// Checks shared by the placement tests (tests/mpi/placement_test.cc for FLUX,
// qwen_image_placement_test.cc for Qwen-Image): bit-identity with one process, and that a placed
// model's weights really were split over the ranks.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <set>
#include <string>

#include "mpi_world.h"
#include "paradiff/dist/self_communicator.h"
#include "paradiff/engine/engine.h"
#include "paradiff/parallel/placement/model_device_map.h"
#include "testing/test_util.h"

namespace paradiff::testing {

inline void expect_bit_identical(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  EXPECT_EQ(std::memcmp(got.raw_data(), want.raw_data(), got.nbytes()), 0)
      << what << " differs from the single-process result on rank " << world().rank();
}

// `request` on the model with every option at its default, on this process alone.
inline engine::GenerationResult run_on_one_process(const std::string& model,
                                                   const engine::GenerationRequest& request) {
  dist::SelfCommunicator self;
  engine::EngineOptions options;
  options.model = model;
  engine::Engine single(self, options);
  return single.run(request);
}

// Every image (latents and pixels) of `result` equals `reference`'s bit for bit.
inline void expect_same_images(const engine::GenerationResult& result,
                               const engine::GenerationResult& reference, size_t images) {
  ASSERT_EQ(result.images.size(), images);
  ASSERT_EQ(reference.images.size(), images);
  for (size_t i = 0; i < images; ++i) {
    expect_bit_identical(result.images[i].latents, reference.images[i].latents, "latents");
    expect_bit_identical(result.images[i].image, reference.images[i].image, "image");
  }
}

// A model-level map of `tree` over `ranks` ranks, as place_model computes it at fp32: `map` is a
// strategy ("sequential", "auto", ...) placed under `budget` ("0=200000,1=200000"), or a map file
// of tests/fixtures/placement/maps/ (given by its name, placed under 1 MB per rank). Named by
// `map`, for SCOPED_TRACE.
inline std::pair<std::string, parallel::DeviceMap> fp32_map(const parallel::ModuleTree& tree,
                                                            const std::string& map, int ranks,
                                                            std::string budget = {}) {
  const bool file = map.size() > 5 && map.ends_with(".json");
  const std::string spec =
      file ? paradiff::testing::source_path("tests/fixtures/placement/maps/" + map) : map;
  if (budget.empty())
    for (int r = 0; r < ranks; ++r) budget += (r ? "," : "") + std::to_string(r) + "=1MB";
  parallel::SizeOptions sizes;
  sizes.dtype = SafetensorsDType::F32;
  return {map,
          parallel::place_model(tree, spec, parallel::MaxMemory::parse(budget, ranks), ranks, sizes)
              .device_map};
}

// Bytes the world's ranks sent, summed, since the last world.reset_stats().
inline int64_t bytes_sent_by_all(dist::Communicator& world) {
  int64_t sent = world.stats().bytes_sent;
  world.allreduce(&sent, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
  return sent;
}

// What one rank holds of a placed model against the whole model on one process.
struct PlacedShare {
  int64_t resident = 0;         // bytes this rank's placed model added (packed weights)
  int64_t full_resident = 0;    // the same for the whole model on one process
  int64_t parameters = 0;       // parameter_bytes() of the placed model on this rank
  int64_t full_parameters = 0;  // parameter_bytes() of the whole model
};

// The work was split: this rank holds something and less than the whole model; the ranks
// together hold exactly what one process holds (oneDNN's packed layouts included), less what
// stays on disk. In fp32 (`exact_bytes`) this rank's parameters are exactly its share of the map
// (`mine`, 4 bytes each), and `on_disk` bytes are bound by nobody between forwards.
inline void expect_weights_split(const PlacedShare& s, int64_t mine, int64_t on_disk,
                                 bool exact_bytes) {
  auto& w = world();
  EXPECT_GT(s.resident, 0) << "rank " << w.rank() << " holds nothing";
  EXPECT_LT(s.resident, s.full_resident) << "rank " << w.rank() << " holds the whole model";
  int64_t sums[2] = {s.resident, s.parameters};
  w.allreduce(sums, 2, dist::ReduceType::I64, dist::ReduceOp::Sum);
  if (on_disk == 0) {
    EXPECT_EQ(sums[0], s.full_resident);
    EXPECT_EQ(sums[1], s.full_parameters);
  } else {
    EXPECT_LT(sums[0], s.full_resident);
  }
  if (exact_bytes) {
    EXPECT_EQ(s.parameters, mine) << "rank " << w.rank();
    EXPECT_EQ(sums[1], s.full_parameters - on_disk);
  }
}

// This rank's bytes of `map` and the bytes it leaves on "disk", as the planner counts them.
inline std::pair<int64_t, int64_t> map_share(const parallel::ModuleTree& tree,
                                             const parallel::DeviceMap& map) {
  parallel::SizeOptions sizes;
  sizes.dtype = SafetensorsDType::F32;
  int64_t mine = 0, on_disk = 0;
  for (const auto& [device, bytes] : parallel::bytes_per_device(tree, map, sizes).per_device) {
    if (device.is_disk()) on_disk = bytes;
    if (device.is_rank() && device.rank_index() == world().rank()) mine = bytes;
  }
  return {mine, on_disk};
}

// Under a pipeline-level map, each component was loaded on the replica ranks `loaded_on` names
// for it and nowhere else. Every rank opens the transformer (under the model-level map
// {"": stage}), but only the ranks of its stage bind its weights: `transformer_bytes` each.
template <class Transformer>
void expect_components_on_owners(engine::Engine& engine,
                                 const std::map<std::string, std::set<int>>& loaded_on,
                                 int64_t transformer_bytes) {
  const int rank = engine.mesh().replica().rank();
  auto& cache = engine.pipeline().components();
  for (const auto& [component, ranks] : loaded_on) {
    const bool owner = ranks.count(rank) != 0;
    if (component == "transformer") {
      const auto transformer = cache.get<Transformer>(
          "transformer", []() -> Transformer { throw Error("the transformer was never opened"); });
      EXPECT_EQ(transformer->parameter_bytes(), owner ? transformer_bytes : 0)
          << "transformer weights on replica rank " << rank;
    } else {
      EXPECT_EQ(cache.load_count(component), owner ? 1 : 0)
          << component << " on replica rank " << rank;
    }
  }
}

}  // namespace paradiff::testing
