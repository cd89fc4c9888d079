// What a placement of a pipeline folder will be, computed from the headers alone (no weights
// read): diffusers' pipeline-level device_map="balanced" (whole components to ranks), the
// transformer's model-level map (accelerate's strategies or an explicit map file), the bytes each
// rank will hold, the room kept for the largest layer, and the hidden states that cross between
// ranks per denoising step. `paradiff inspect --model` prints it; a placed run executes it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "paradiff/core/dtype.h"
#include "paradiff/parallel/placement/model_device_map.h"
#include "paradiff/parallel/placement/pipeline_device_map.h"

namespace paradiff::engine {

struct PlacementOptions {
  std::string model;  // a diffusers pipeline folder
  // diffusers' variant= ("fp16"): sizes and disk files from that variant's files where a
  // component has them, as loading reads them.
  std::string variant;
  std::string device_map;              // pipeline level: "" (none), "balanced", "cpu"
  std::string transformer_device_map;  // "" (none), a strategy, or a .json map file
  std::string vae_device_map;          // the VAE's (AutoencoderKL) map, the same forms
  // FLUX's T5 (text_encoder_2), placed by its own map as the transformer is: "" (none), a
  // strategy, or a .json map file over T5EncoderModel's modules.
  std::string text_encoder_2_device_map;
  // The text_encoder the same way: FLUX's CLIPTextModel, or Qwen-Image's
  // Qwen2_5_VLForConditionalGeneration (the whole model's modules: vision tower and lm_head too).
  std::string text_encoder_device_map;
  std::string max_memory;  // "0=16GB,1=16GB"; "" = the host's memory shared
  int world_size = 1;
  int local_ranks = 0;  // ranks on this host for the default budget; 0 = world_size
  // The host of each placement rank, when known (a job running under mpirun): bytes are then
  // also summed per host. Empty: unknown.
  std::vector<std::string> hosts;
  DType dtype = DType::F32;
  // The activations the traffic estimate counts: FLUX's joint sequence for one image.
  int64_t height = 1024, width = 1024, text_tokens = 512;
};

struct PlacementPlan {
  PlacementOptions options;
  parallel::MaxMemory max_memory;  // as given, or the default budget
  bool user_set_max_memory = false;
  std::vector<parallel::ComponentSize> components;
  std::optional<parallel::PipelineDeviceMap> pipeline;     // with device_map="balanced"
  std::optional<parallel::ModelPlacement> transformer;     // with a transformer device map
  std::optional<parallel::StepTraffic> traffic;            // of the transformer map
  std::optional<parallel::ModelPlacement> text_encoder_2;  // with a text_encoder_2 map
  std::optional<parallel::ModelPlacement> text_encoder;    // with a text_encoder map
  // With a VAE map: accelerate's map of the VAE on the whole budget (as diffusers' separate
  // from_pretrained call for the VAE would use it).
  std::optional<parallel::ModelPlacement> vae;
  // Every rank's bytes: components placed whole, plus the share of each model placed by its own
  // map (the transformer, then the text encoders, each filling what the earlier ones left; not
  // counted whole then) and the VAE's share under its map. Ranks ascending, then disk.
  std::vector<std::pair<parallel::DeviceKey, int64_t>> bytes_per_rank;
  std::vector<std::pair<std::string, int64_t>> bytes_per_host;  // when the hosts are known
};

// Validates every option (refusals name the value) and computes the plan.
PlacementPlan plan_placement(const PlacementOptions& options);

// {"pipeline": {component: rank} | null, "transformer": {module: rank} | null, ...}.
nlohmann::ordered_json placement_plan_to_json(const PlacementPlan& plan);

}  // namespace paradiff::engine
