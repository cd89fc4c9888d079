// A transformer placed by a model-level map for timing (`paradiff bench --transformer-device-map`):
// the map planned from a transformer folder's headers as accelerate plans it (a strategy on a
// budget, or a map file), and the model loaded with from_pretrained_placed over a group. A random
// model is first written out as a diffusers folder, so that it is sized, placed and streamed
// from "disk" exactly as a real checkpoint is.
#pragma once

#include <string>
#include <vector>

#include "paradiff/dist/communicator.h"
#include "paradiff/engine/transformer_runner.h"
#include "paradiff/parallel/placement/model_device_map.h"

namespace paradiff::engine {

// `device_map`: auto, balanced, balanced_low_0, sequential or a .json map file; `max_memory`:
// "0=16GB,1=16GB", or "" for the host's available memory shared by `local_ranks` ranks. Sizes
// count at `dtype` (F32 or BF16). Collective-free: reads only config.json and the headers.
parallel::ModelPlacement plan_transformer_placement(const std::string& folder,
                                                    const std::string& device_map,
                                                    const std::string& max_memory, int world_size,
                                                    int local_ranks, DType dtype);

// plan_transformer_placement run on rank 0 of `world` (its budget; by default its host's memory
// shared by the ranks on that host) for `stages` devices, and the map broadcast: every rank gets
// the same map. Collective over `world`. `summary` is rank 0's one line for a report: the map and
// the bytes per device as JSON (empty on the other ranks); `hosts` every rank's host name, by
// rank of `world` (gathered for the budget, kept for reports).
struct AgreedPlacement {
  parallel::DeviceMap map;
  std::string summary;
  std::vector<std::string> hosts;
};
AgreedPlacement agree_transformer_placement(dist::Communicator& world, const std::string& folder,
                                            const std::string& device_map,
                                            const std::string& max_memory, int stages, DType dtype);

// The folder's transformer (FLUX or Qwen-Image, by its config.json) with only this rank's units
// of `map` bound; its forward is collective over `group`, which must outlive it.
TransformerModel load_placed_transformer(const std::string& folder, DType compute,
                                         const parallel::DeviceMap& map, dist::Communicator& group);

// Writes a random model of `config` (the values with_random_weights(config, compute, seed) binds,
// linear weights stored in `compute`, the rest F32) as `folder`/config.json and
// diffusion_pytorch_model.safetensors. `folder` is created.
void write_random_transformer(const models::flux::FluxTransformerConfig& config, DType compute,
                              uint64_t seed, const std::string& folder);
void write_random_transformer(const models::qwen_image::QwenImageTransformerConfig& config,
                              DType compute, uint64_t seed, const std::string& folder);

}  // namespace paradiff::engine
