// AutoencoderKLQwenImage's decoder placed over 2 and 3 ranks by explicit maps that keep its
// units whole (accelerate's strategy maps split its residual blocks: the class declares no
// no-split modules), with a unit on "disk" and owners that alternate: each rank binds only its
// decoder units, disk units stream from the checkpoint on rank 0, and the images equal the
// single-process decode bit for bit.
#include <gtest/gtest.h>

#include <fstream>

#include "mpi_world.h"
#include "paradiff/core/memory.h"
#include "paradiff/io/checkpoint.h"
#include "paradiff/models/vae_qwen_image/autoencoder_kl_qwen_image.h"
#include "paradiff/models/vae_qwen_image/placed_qwen_image_vae_decoder.h"
#include "paradiff/parallel/placement/model_device_map.h"
#include "placement_checks.h"
#include "testing/test_util.h"

namespace paradiff {
namespace {

using models::vae_qwen_image::AutoencoderKLQwenImage;
using models::vae_qwen_image::PlacedQwenImageVaeDecoder;

const std::string kVae = "tests/fixtures/qwen_image_pipeline/tiny/vae";

parallel::DeviceMap map_for(int ranks) {
  if (ranks == 2)
    return parallel::device_map_from_json({{"encoder", 0},
                                           {"quant_conv", 0},
                                           {"post_quant_conv", 0},
                                           {"decoder.conv_in", 0},
                                           {"decoder.mid_block", 0},
                                           {"decoder.up_blocks.0", 1},
                                           {"decoder.up_blocks.1", "disk"},
                                           {"decoder.up_blocks.2", 1},
                                           {"decoder.norm_out", 1},
                                           {"decoder.conv_out", 1}});
  return parallel::device_map_from_json({{"encoder", 2},
                                         {"quant_conv", 2},
                                         {"post_quant_conv", 1},
                                         {"decoder.conv_in", 1},
                                         {"decoder.mid_block.attentions", 0},
                                         {"decoder.mid_block.resnets", 2},
                                         {"decoder.up_blocks.0", 2},
                                         {"decoder.up_blocks.1.resnets", 0},
                                         {"decoder.up_blocks.1.upsamplers", 1},
                                         {"decoder.up_blocks.2", 2},
                                         {"decoder.norm_out", "disk"},
                                         {"decoder.conv_out", 1}});
}

bool decoder_side(const std::string& name) {
  return name.starts_with("decoder.") || name.starts_with("post_quant_conv.");
}

TEST(QwenImageVaePlacement, DecoderRunsSplitAndBitIdentical) {
  auto& world = testing::world();
  if (world.size() != 2 && world.size() != 3) GTEST_SKIP() << "runs at 2 and 3 ranks";
  const std::string folder = testing::source_path(kVae);
  auto rng = testing::make_rng();
  const Tensor z = testing::random_normal({2, 4, 1, 4, 6}, DType::F32, rng);
  const Tensor want =
      AutoencoderKLQwenImage::from_pretrained(folder, models::vae_qwen_image::VaeParts::DecoderOnly)
          .decode(z);

  const auto placed =
      PlacedQwenImageVaeDecoder::from_pretrained(folder, map_for(world.size()), world);
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
  EXPECT_GT(on_disk, 0) << "the map streams units";
  EXPECT_LT(placed.parameter_bytes(), decoder) << "rank " << world.rank() << " holds it all";
  int64_t sum = placed.parameter_bytes();
  world.allreduce(&sum, 1, dist::ReduceType::I64, dist::ReduceOp::Sum);
  EXPECT_EQ(sum, decoder - on_disk);

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

// accelerate's golden 2-rank "auto" map splits the mid block's first residual block (its
// norm1 on rank 0, conv1 on rank 1): refused before anything loads, naming the unit.
TEST(QwenImageVaePlacement, AcceleratesSplitResidualBlockIsRefused) {
  auto& world = testing::world();
  if (world.size() != 2) GTEST_SKIP() << "runs at 2 ranks";
  std::ifstream in(testing::source_path("tests/fixtures/placement/model_maps.json"));
  const auto golden = nlohmann::ordered_json::parse(in);
  nlohmann::ordered_json map = nlohmann::ordered_json::object();
  for (const auto& c : golden["cases"])
    if (c["model"] == "tiny_qwen_image_vae" && c["strategy"] == "auto" &&
        c["max_memory"].size() == 2)
      for (const auto& entry : c["device_map"]) map[entry[0].get<std::string>()] = entry[1];
  ASSERT_FALSE(map.empty());
  try {
    PlacedQwenImageVaeDecoder::from_pretrained(testing::source_path(kVae),
                                               parallel::device_map_from_json(map), world);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("splits 'decoder.mid_block.resnets.0'"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace paradiff
