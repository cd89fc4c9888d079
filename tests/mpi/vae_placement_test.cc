// AutoencoderKL's decoder placed by accelerate's own maps (the golden tiny_vae cases of
// tests/fixtures/placement/model_maps.json, computed by infer_auto_device_map on the meta model):
// each rank binds only its decoder units, "disk" units stream from the checkpoint on rank 0, and
// the images equal the single-process decode bit for bit.
#include <gtest/gtest.h>

#include <fstream>

#include "mpi_world.h"
#include "paradiff/core/memory.h"
#include "paradiff/io/checkpoint.h"
#include "paradiff/models/vae/autoencoder_kl.h"
#include "paradiff/models/vae/placed_vae_decoder.h"
#include "paradiff/parallel/placement/model_device_map.h"
#include "placement_checks.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

using models::vae::AutoencoderKL;
using models::vae::PlacedVaeDecoder;

const std::string kVae = "tests/fixtures/flux_pipeline/tiny/vae";

// accelerate's "auto" map of the tiny VAE for `ranks` ranks, from the golden fixture.
parallel::DeviceMap golden_auto_map(int ranks) {
  std::ifstream in(testing::source_path("tests/fixtures/placement/model_maps.json"));
  const auto golden = nlohmann::ordered_json::parse(in);
  for (const auto& c : golden["cases"]) {
    if (c["model"] != "tiny_vae" || c["strategy"] != "auto" ||
        c["max_memory"].size() != static_cast<size_t>(ranks))
      continue;
    nlohmann::ordered_json map = nlohmann::ordered_json::object();
    for (const auto& entry : c["device_map"]) map[entry[0].get<std::string>()] = entry[1];
    return parallel::device_map_from_json(map);
  }
  ADD_FAILURE() << "no golden tiny_vae auto map for " << ranks << " ranks";
  return {};
}

bool decoder_side(const std::string& name) {
  return name.starts_with("decoder.") || name.starts_with("post_quant_conv.");
}

TEST(VaePlacement, DecoderRunsSplitAndBitIdentical) {
  auto& world = testing::world();
  if (world.size() != 2 && world.size() != 3) GTEST_SKIP() << "runs at 2 and 3 ranks";
  const std::string folder = testing::source_path(kVae);
  const parallel::DeviceMap map = golden_auto_map(world.size());
  auto rng = testing::make_rng();
  const Tensor z = testing::random_normal({2, 16, 4, 6}, DType::F32, rng);
  const Tensor want =
      AutoencoderKL::from_pretrained(folder, models::vae::VaeParts::DecoderOnly).decode(z);

  const PlacedVaeDecoder placed = PlacedVaeDecoder::from_pretrained(folder, map, world);
  // This rank bound exactly its decoder units' tensors (F32); the ranks together bound the
  // decoder less what stays on disk.
  const Checkpoint checkpoint = Checkpoint::open_folder(folder);
  int64_t mine = 0, decoder = 0, on_disk = 0;
  for (const std::string& name : checkpoint.names()) {
    if (!decoder_side(name)) continue;
    const int64_t bytes = checkpoint.info(name).numel * 4;
    decoder += bytes;
    if (placed.placement().binds_tensor(name)) mine += bytes;
    bool disk = false;
    for (const std::string& unit : placed.placement().assignment().units())
      if (name.starts_with(unit + ".")) disk = placed.placement().assignment().on_disk(unit);
    if (disk) on_disk += bytes;
  }
  EXPECT_EQ(placed.parameter_bytes(), mine);
  EXPECT_LT(placed.parameter_bytes(), decoder) << "rank " << world.rank() << " holds it all";
  int64_t sum = placed.parameter_bytes();
  world.allreduce(&sum, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
  EXPECT_EQ(sum, decoder - on_disk);
  if (world.size() == 2) {
    EXPECT_GT(on_disk, 0) << "the golden 2-rank map streams units";
  }

  world.reset_stats();
  const int64_t before = current_bytes();
  const Tensor got = placed.decode(z);
  testing::expect_bit_identical(got, want, "placed decode");
  EXPECT_EQ(current_bytes() - before, got.nbytes())
      << "streamed units and activations must not stay resident after decode";
  int64_t sent = world.stats().bytes_sent;
  world.allreduce(&sent, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
  EXPECT_GT(sent, got.nbytes()) << "activations crossed between the owners";
}

TEST(VaePlacement, AMapThatSplitsAUnitIsRefused) {
  auto& world = testing::world();
  if (world.size() != 2) GTEST_SKIP() << "runs at 2 ranks";
  const auto map =
      parallel::device_map_from_json({{"", 0}, {"decoder.mid_block.resnets.0.conv2", 1}});
  try {
    PlacedVaeDecoder::from_pretrained(testing::source_path(kVae), map, world);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("splits 'decoder.mid_block.resnets.0'"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace paradiff
