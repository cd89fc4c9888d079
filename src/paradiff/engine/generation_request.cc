#include "paradiff/engine/generation_request.h"

#include "paradiff/core/error.h"

namespace paradiff::engine {

OutputType parse_output_type(const std::string& name) {
  if (name == "pil") return OutputType::Pil;
  if (name == "np") return OutputType::Np;
  if (name == "latent") return OutputType::Latent;
  throw Error(str_cat("output_type must be pil, np or latent; got '", name, "'"));
}

const char* output_type_name(OutputType type) {
  switch (type) {
    case OutputType::Pil:
      return "pil";
    case OutputType::Np:
      return "np";
    case OutputType::Latent:
      return "latent";
  }
  return "?";
}

pipeline::GenerationOptions GenerationRequest::options() const {
  pipeline::GenerationOptions o;
  o.height = height;
  o.width = width;
  o.num_inference_steps = num_inference_steps;
  o.guidance_scale = guidance_scale;
  o.true_cfg_scale = true_cfg_scale;
  o.max_sequence_length = max_sequence_length;
  o.seed = seed;
  o.num_images_per_prompt = num_images_per_prompt;
  return o;
}

std::string GenerationRequest::negative_prompt_for(size_t index) const {
  if (negative_prompt.empty()) return {};
  return negative_prompt.size() == 1 ? negative_prompt[0] : negative_prompt.at(index);
}

void GenerationRequest::validate() const {
  PARADIFF_CHECK(!prompt.empty(), "a generation request needs at least one prompt");
  PARADIFF_CHECK(negative_prompt.size() <= 1 || negative_prompt.size() == prompt.size(),
                 "negative_prompt must be one prompt or one per prompt: got ",
                 negative_prompt.size(), " for ", prompt.size(), " prompt(s)");
  PARADIFF_CHECK(num_images_per_prompt >= 1 && num_images_per_prompt <= kMaxImagesPerPrompt,
                 "num_images_per_prompt must be between 1 and ", kMaxImagesPerPrompt, ", got ",
                 num_images_per_prompt);
  PARADIFF_CHECK(seeds.empty() || seeds.size() == prompt.size(),
                 "seeds must be empty or one per prompt: got ", seeds.size(), " for ",
                 prompt.size(), " prompt(s)");
  PARADIFF_CHECK(seeds.empty() || latent_draw == LatentDraw::PerPrompt,
                 "per-prompt seeds give each prompt its own draw: they cannot be combined with "
                 "one draw for the whole request (latent_draw OneBatch)");
}

}  // namespace paradiff::engine
