// libFuzzer target for config.json: any byte string is read as the config of every component
// paradiff loads (FluxTransformer2DModel, QwenImageTransformer2DModel, AutoencoderKL,
// AutoencoderKLQwenImage, CLIPTextModel, T5EncoderModel, Qwen2.5-VL's text model and
// FlowMatchEulerDiscreteScheduler). Each must either refuse it with paradiff::Error or give a
// config; anything else (another exception, ASan, UBSan) is a finding. Built and run by
// scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "paradiff/core/error.h"
#include "paradiff/io/json_config.h"
#include "paradiff/models/clip/clip_text_config.h"
#include "paradiff/models/flux/flux_config.h"
#include "paradiff/models/qwen2_5_vl/qwen2_5_vl_config.h"
#include "paradiff/models/qwen_image/qwen_image_config.h"
#include "paradiff/models/t5/t5_config.h"
#include "paradiff/models/vae/vae_config.h"
#include "paradiff/models/vae_qwen_image/qwen_image_vae_config.h"
#include "paradiff/pipeline/flow_match_euler_scheduler.h"

namespace {

template <typename Config>
void read_as(const paradiff::JsonConfig& json) {
  try {
    const Config config = Config::from_json(json);
    (void)config;
  } catch (const paradiff::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::optional<paradiff::JsonConfig> parsed;
  try {
    parsed.emplace(paradiff::JsonConfig::parse(text, "fuzz/config.json"));
  } catch (const paradiff::Error&) {
    return 0;
  }
  const paradiff::JsonConfig& json = *parsed;
  using namespace paradiff::models;
  read_as<flux::FluxTransformerConfig>(json);
  read_as<qwen_image::QwenImageTransformerConfig>(json);
  read_as<vae::AutoencoderKLConfig>(json);
  read_as<vae_qwen_image::AutoencoderKLQwenImageConfig>(json);
  read_as<clip::CLIPTextConfig>(json);
  read_as<t5::T5Config>(json);
  read_as<qwen2_5_vl::Qwen2_5_VLTextConfig>(json);
  read_as<paradiff::pipeline::FlowMatchEulerDiscreteSchedulerConfig>(json);
  return 0;
}
