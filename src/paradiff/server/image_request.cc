#include "paradiff/server/image_request.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>

#include "paradiff/server/api_error.h"

namespace paradiff::server {

namespace {

using nlohmann::json;

// The value as text for a message (strings quoted, as JSON writes them).
std::string shown(const json& value) {
  std::string text = value.dump();
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

int64_t integer(const json& body, const char* field, int64_t lowest) {
  const json& v = body.at(field);
  if (!v.is_number_integer() || v.get<int64_t>() < lowest)
    throw bad_request(field, str_cat(field, " must be an integer >= ", lowest, ", got ", shown(v)));
  return v.get<int64_t>();
}

// A guidance scale: a number within +-limits.max_guidance_scale. diffusers sets no bound, but a
// scale large enough to overflow the latents fails the run, and under mpirun a failed run ends
// the job: refused here instead.
float scale(const json& body, const char* field, const ServerLimits& limits) {
  const json& v = body.at(field);
  const double bound = limits.max_guidance_scale;
  if (!v.is_number() || std::abs(v.get<double>()) > bound)
    throw bad_request(field, str_cat(field, " must be a number between -", bound, " and ", bound,
                                     ", got ", shown(v)));
  return v.get<float>();
}

std::string text(const json& body, const char* field) {
  const json& v = body.at(field);
  if (!v.is_string()) throw bad_request(field, str_cat(field, " must be a string, got ", shown(v)));
  return v.get<std::string>();
}

}  // namespace

bool ImageRequest::batches_with(const ImageRequest& o) const {
  return n == o.n && width == o.width && height == o.height &&
         num_inference_steps == o.num_inference_steps && guidance_scale == o.guidance_scale &&
         true_cfg_scale == o.true_cfg_scale && max_sequence_length == o.max_sequence_length &&
         has_negative_prompt == o.has_negative_prompt;
}

ImageRequest parse_image_request(const std::string& body_text, const ServerLimits& limits) {
  json body;
  try {
    body = json::parse(body_text);
  } catch (const json::parse_error& e) {
    throw bad_request("", str_cat("the request body is not valid JSON: ", e.what()));
  }
  if (!body.is_object())
    throw bad_request("", str_cat("the request body must be a JSON object, got ", shown(body)));
  ImageRequest r;
  if (!body.contains("prompt")) throw bad_request("prompt", "prompt is required");
  r.prompt = text(body, "prompt");
  if (body.contains("n")) {
    r.n = integer(body, "n", 1);
    if (r.n > limits.max_n)
      throw over_limit("n", str_cat("n is ", r.n, "; this server makes at most ", limits.max_n,
                                    " images per request"));
  }
  if (body.contains("size") && !body["size"].is_null()) {
    const std::string size = text(body, "size");
    static const std::regex shape("([0-9]{1,6})x([0-9]{1,6})");
    std::smatch m;
    if (!std::regex_match(size, m, shape) || std::stoll(m[1]) == 0 || std::stoll(m[2]) == 0)
      throw bad_request(
          "size", str_cat("size must be \"WIDTHxHEIGHT\" (e.g. \"512x512\"), got \"", size, "\""));
    r.width = std::stoll(m[1]);
    r.height = std::stoll(m[2]);
    check_resolved_size(r.width, r.height, limits);
  }
  if (body.contains("response_format") && !body["response_format"].is_null()) {
    const std::string format = text(body, "response_format");
    if (format == "url")
      throw bad_request("response_format",
                        "response_format \"url\" is not supported: this server keeps no files; "
                        "use \"b64_json\"");
    if (format != "b64_json")
      throw bad_request("response_format",
                        str_cat("response_format must be \"b64_json\", got \"", format, "\""));
  }
  if (body.contains("num_inference_steps")) {
    r.num_inference_steps = integer(body, "num_inference_steps", 1);
    if (r.num_inference_steps > limits.max_steps)
      throw over_limit("num_inference_steps",
                       str_cat("num_inference_steps is ", r.num_inference_steps,
                               "; this server runs at most ", limits.max_steps));
  }
  if (body.contains("guidance_scale")) r.guidance_scale = scale(body, "guidance_scale", limits);
  if (body.contains("true_cfg_scale")) r.true_cfg_scale = scale(body, "true_cfg_scale", limits);
  if (body.contains("seed")) r.seed = static_cast<uint64_t>(integer(body, "seed", 0));
  if (body.contains("negative_prompt") && !body["negative_prompt"].is_null()) {
    r.negative_prompt = text(body, "negative_prompt");
    r.has_negative_prompt = true;
  }
  if (body.contains("max_sequence_length"))
    r.max_sequence_length = integer(body, "max_sequence_length", 1);
  if (body.contains("stream")) {
    if (!body["stream"].is_boolean())
      throw bad_request("stream",
                        str_cat("stream must be true or false, got ", shown(body["stream"])));
    r.stream = body["stream"].get<bool>();
  }
  return r;
}

void check_resolved_size(int64_t width, int64_t height, const ServerLimits& limits) {
  if (width * height > limits.max_pixels)
    throw over_limit("size", str_cat("size ", width, "x", height, " is ", width * height,
                                     " pixels; this server makes at most ", limits.max_pixels));
}

engine::GenerationRequest to_generation_request(const std::vector<const ImageRequest*>& batch) {
  PARADIFF_CHECK(!batch.empty(), "to_generation_request: an empty batch");
  const ImageRequest& first = *batch.front();
  engine::GenerationRequest g;
  g.height = first.height;
  g.width = first.width;
  g.num_inference_steps = first.num_inference_steps;
  g.guidance_scale = first.guidance_scale;
  g.true_cfg_scale = first.true_cfg_scale;
  g.num_images_per_prompt = first.n;
  g.max_sequence_length = first.max_sequence_length;
  g.seed = first.seed;
  for (const ImageRequest* r : batch) {
    PARADIFF_CHECK(r->batches_with(first), "to_generation_request: requests that do not batch");
    g.prompt.push_back(r->prompt);
    if (r->has_negative_prompt) g.negative_prompt.push_back(r->negative_prompt);
    g.seeds.push_back(r->seed);
  }
  // One request alone runs exactly as `paradiff generate --seed` would.
  if (batch.size() == 1) g.seeds.clear();
  return g;
}

}  // namespace paradiff::server
