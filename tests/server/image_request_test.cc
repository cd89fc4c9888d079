// The request checks and the batching rules, without a model: every refusal names the field
// and the value; requests batch only where everything but prompt and seed agrees; base64 round
// trips.
#include "paradiff/server/image_request.h"

#include <gtest/gtest.h>

#include "paradiff/io/base64.h"
#include "paradiff/server/api_error.h"
#include "paradiff/server/request_queue.h"

namespace paradiff::server {
namespace {

// The ApiError a body raises (status 0: none).
ApiError refusal(const std::string& body, const ServerLimits& limits = {}) {
  try {
    parse_image_request(body, limits);
  } catch (const ApiError& e) {
    return e;
  }
  return ApiError(0, "", "", "accepted");
}

TEST(ImageRequest, ParsesTheOpenAiFieldsAndTheDiffusersExtras) {
  const ImageRequest r = parse_image_request(
      R"({"prompt":"a cat","n":2,"size":"64x32","response_format":"b64_json",
          "num_inference_steps":3,"guidance_scale":2.5,"true_cfg_scale":4,"seed":11,
          "negative_prompt":"a dog","max_sequence_length":16,"stream":true,"model":"x"})",
      {});
  EXPECT_EQ(r.prompt, "a cat");
  EXPECT_EQ(r.n, 2);
  EXPECT_EQ(r.width, 64);
  EXPECT_EQ(r.height, 32);
  EXPECT_EQ(r.num_inference_steps, 3);
  EXPECT_EQ(r.guidance_scale, 2.5f);
  EXPECT_EQ(r.true_cfg_scale, 4.0f);
  EXPECT_EQ(r.seed, 11u);
  EXPECT_TRUE(r.has_negative_prompt);
  EXPECT_EQ(r.negative_prompt, "a dog");
  EXPECT_EQ(r.max_sequence_length, 16);
  EXPECT_TRUE(r.stream);
}

TEST(ImageRequest, RefusalsNameTheFieldAndTheValue) {
  struct Case {
    std::string body;
    int status;
    std::string param, message;
  };
  ServerLimits limits;
  limits.max_n = 2;
  limits.max_steps = 10;
  limits.max_pixels = 64 * 64;
  const Case cases[] = {
      {R"({"prompt": "x",)", 400, "", "not valid JSON"},
      {R"(["x"])", 400, "", "must be a JSON object"},
      {R"({"n": 1})", 400, "prompt", "prompt is required"},
      {R"({"prompt": 5})", 400, "prompt", "prompt must be a string, got 5"},
      {R"({"prompt": "x", "size": "big"})", 400, "size", "got \"big\""},
      {R"({"prompt": "x", "size": "0x64"})", 400, "size", "got \"0x64\""},
      {R"({"prompt": "x", "size": "128x128"})", 413, "size", "16384 pixels"},
      {R"({"prompt": "x", "response_format": "url"})", 400, "response_format", "\"url\""},
      {R"({"prompt": "x", "response_format": "png"})", 400, "response_format", "got \"png\""},
      {R"({"prompt": "x", "n": 0})", 400, "n", "n must be an integer >= 1, got 0"},
      {R"({"prompt": "x", "n": 3})", 413, "n", "n is 3"},
      {R"({"prompt": "x", "n": "2"})", 400, "n", "got \"2\""},
      {R"({"prompt": "x", "num_inference_steps": 11})", 413, "num_inference_steps", "is 11"},
      {R"({"prompt": "x", "seed": -1})", 400, "seed", "got -1"},
      {R"({"prompt": "x", "guidance_scale": "high"})", 400, "guidance_scale", "\"high\""},
      {R"({"prompt": "x", "true_cfg_scale": 1e38})", 400, "true_cfg_scale", "between -1000"},
      {R"({"prompt": "x", "stream": 1})", 400, "stream", "got 1"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    const ApiError e = refusal(c.body, limits);
    EXPECT_EQ(e.status(), c.status);
    EXPECT_EQ(e.param(), c.param);
    EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
    EXPECT_NE(e.json().find("\"error\":{"), std::string::npos) << e.json();
  }
}

TEST(ImageRequest, BatchesOnlyWhatCanShareARun) {
  const ImageRequest a = parse_image_request(R"({"prompt":"a","seed":1,"size":"32x32"})", {});
  const ImageRequest b = parse_image_request(R"({"prompt":"b","seed":2,"size":"32x32"})", {});
  const ImageRequest c = parse_image_request(R"({"prompt":"a","seed":1,"size":"64x32"})", {});
  const ImageRequest d = parse_image_request(R"({"prompt":"a","n":2,"size":"32x32"})", {});
  EXPECT_TRUE(a.batches_with(b));
  EXPECT_FALSE(a.batches_with(c));
  EXPECT_FALSE(a.batches_with(d));
  const engine::GenerationRequest g = to_generation_request({&a, &b});
  EXPECT_EQ(g.prompt, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(g.seeds, (std::vector<uint64_t>{1, 2}));
  // Alone, a request runs as `paradiff generate --seed` does: no per-prompt seeds.
  const engine::GenerationRequest alone = to_generation_request({&a});
  EXPECT_TRUE(alone.seeds.empty());
  EXPECT_EQ(alone.seed, 1u);

  // The queue takes the oldest request and the later ones that batch with it, in order, and
  // leaves the rest waiting; a full queue answers 429.
  RequestQueue queue(3, 4);
  queue.push(a);
  queue.push(c);
  queue.push(b);
  try {
    queue.push(d);
    ADD_FAILURE() << "a fourth request fits a queue of 3";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 429);
    EXPECT_NE(std::string(e.what()).find("3 request(s) are waiting"), std::string::npos);
  }
  auto batch = queue.take_batch(std::chrono::milliseconds(0));
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch[0]->request().prompt, "a");
  EXPECT_EQ(batch[1]->request().prompt, "b");
  EXPECT_EQ(queue.depth(), 1);
  EXPECT_EQ(queue.close().size(), 1u);
  EXPECT_TRUE(queue.take_batch(std::chrono::milliseconds(0)).empty());
}

TEST(Base64, RoundTripsEveryLength) {
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(base64_decode(base64_encode(bytes)), bytes);
    bytes.push_back(static_cast<char>(i * 37));
  }
  EXPECT_THROW(base64_decode("Zm9*"), Error);
  EXPECT_THROW(base64_decode("Zm9"), Error);
}

}  // namespace
}  // namespace paradiff::server
