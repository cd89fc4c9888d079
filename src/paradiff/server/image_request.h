// One POST /v1/images/generations body: the OpenAI Images fields (prompt, n, size,
// response_format) plus diffusers-named extras, checked field by field (a 400 or 413 naming the
// field and the value), and how requests that may run together become one engine request.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "paradiff/engine/generation_request.h"

namespace paradiff::server {

// What this server accepts (paradiff serve's --max-* flags); beyond them: 413 (429 for the
// queue).
struct ServerLimits {
  int64_t max_queue = 16;            // requests waiting (not running)
  int64_t max_n = 4;                 // images per request
  int64_t max_steps = 50;            // num_inference_steps
  int64_t max_pixels = 1024 * 1024;  // width x height
  int64_t max_batch = 4;             // waiting requests run together in one engine run
  double max_guidance_scale = 1000;  // |guidance_scale|, |true_cfg_scale|; beyond: 400
};

struct ImageRequest {
  std::string prompt;
  std::string negative_prompt;
  bool has_negative_prompt = false;
  int64_t n = 1;
  int64_t width = 0, height = 0;  // 0 (no size): the model's default
  int64_t num_inference_steps = 28;
  float guidance_scale = 3.5f;
  float true_cfg_scale = 1.0f;
  uint64_t seed = 0;
  int64_t max_sequence_length = 512;
  bool stream = false;  // answer Server-Sent Events

  // Whether two requests can share one engine run: everything but prompt and seed agrees.
  bool batches_with(const ImageRequest& other) const;
};

// Parses and checks a request body. Throws ApiError: 400 for malformed JSON or a bad field, 413
// for n or num_inference_steps beyond the limits (the size is checked once the model resolved
// it: check_resolved_size).
ImageRequest parse_image_request(const std::string& body, const ServerLimits& limits);

// 413 when the size the model will run (after rounding) exceeds max_pixels.
void check_resolved_size(int64_t width, int64_t height, const ServerLimits& limits);

// The engine request for requests that batch together (their prompts in order, one seed each,
// n images per prompt).
engine::GenerationRequest to_generation_request(const std::vector<const ImageRequest*>& batch);

}  // namespace paradiff::server
