// paradiff serve in process, on the tiny FLUX pipeline and an ephemeral port, driven by an HTTP
// client: its PNGs equal, byte for byte, what Engine::run and the CLI's PNG writer give for the
// same request (alone and batched with another request of a different seed); bad requests and
// limits answer 400/413/429 naming the field; progress arrives as Server-Sent Events in order
// before the result; a streaming client that goes away cancels its run; /metrics counts what
// happened; a shutdown fails the waiting requests with 503.
#include "paradiff/server/server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "paradiff/dist/self_communicator.h"
#include "paradiff/io/base64.h"
#include "paradiff/io/png.h"
#include "testing/temp_dir.h"
#include "testing/test_util.h"

namespace paradiff::server {
namespace {

using nlohmann::json;

std::string tiny() {
  return testing::source_path("tests/fixtures/flux_pipeline/tiny");
}

// One engine for the whole suite: loading it is the slow part.
engine::Engine& shared_engine() {
  static dist::SelfCommunicator world;
  static engine::Engine engine(world, engine::EngineOptions{tiny(), DType::F32, {}, {}});
  return engine;
}

// The PNG files `paradiff generate` writes for the request (Engine::run, then write_png).
std::vector<std::string> reference_pngs(const engine::GenerationRequest& request) {
  const auto result = shared_engine().run(request);
  testing::TempDir dir;
  std::vector<std::string> files;
  for (const auto& image : result.images) {
    const std::string path = dir.file("out.png");
    write_png(path, image.image);
    std::ifstream in(path, std::ios::binary);
    files.push_back(std::string(std::istreambuf_iterator<char>(in), {}));
  }
  return files;
}

engine::GenerationRequest small_request(const std::string& prompt, uint64_t seed, int64_t n) {
  engine::GenerationRequest r;
  r.prompt = {prompt};
  r.width = 48;
  r.height = 32;
  r.num_inference_steps = 2;
  r.max_sequence_length = 8;
  r.seed = seed;
  r.num_images_per_prompt = n;
  return r;
}

std::string small_body(const std::string& prompt, uint64_t seed, int64_t n, int64_t steps = 2) {
  return json{{"prompt", prompt},
              {"size", "48x32"},
              {"n", n},
              {"num_inference_steps", steps},
              {"seed", seed},
              {"max_sequence_length", 8},
              {"response_format", "b64_json"}}
      .dump();
}

// A finished exchange (status 0: no answer).
struct Answer {
  int status = 0;
  std::string body;
};
Answer answer_of(const httplib::Result& res) {
  return res ? Answer{res->status, res->body} : Answer{};
}

std::vector<std::string> decoded_images(const json& answer) {
  std::vector<std::string> png;
  for (const auto& item : answer.at("data"))
    png.push_back(base64_decode(item.at("b64_json").get<std::string>()));
  return png;
}

// A server on an ephemeral port whose serve loop runs on a thread once start_loop() is called
// (until then requests wait in its queue).
class ServerTest : public ::testing::Test {
 protected:
  void open(ServerLimits limits = {}) {
    HttpOptions options;
    options.port = 0;
    options.limits = limits;
    server_ = std::make_unique<Server>(shared_engine(), options);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(std::chrono::seconds(60));
  }
  void start_loop() {
    loop_ = std::thread([this] { server_->run([this] { return stop_.load(); }); });
  }
  void TearDown() override {
    stop_ = true;
    if (!loop_.joinable() && server_) start_loop();  // run() returns at once and stops HTTP
    if (loop_.joinable()) loop_.join();
  }
  httplib::Result post(const std::string& body, const std::string& path = kPath) {
    return client_->Post(path.c_str(), body, "application/json");
  }
  int64_t queue_depth() {
    auto res = httplib::Client("127.0.0.1", server_->port()).Get("/health");
    return json::parse(res->body).at("queue_depth");
  }
  void wait_for_depth(int64_t depth) {
    for (int i = 0; i < 1000 && queue_depth() != depth; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(queue_depth(), depth);
  }
  // The value of one metric line ("name value"), -1 when absent.
  double metric(const std::string& name) {
    auto res = httplib::Client("127.0.0.1", server_->port()).Get("/metrics");
    std::smatch m;
    const std::regex line("(^|\n)" + std::regex_replace(name, std::regex(R"([{}"])"), R"(\$&)") +
                          " ([0-9.e+-]+)");
    return std::regex_search(res->body, m, line) ? std::stod(m[2]) : -1;
  }

  static constexpr const char* kPath = "/v1/images/generations";
  std::unique_ptr<Server> server_;
  std::unique_ptr<httplib::Client> client_;
  std::atomic<bool> stop_{false};
  std::thread loop_;
};

TEST_F(ServerTest, ImagesEqualEngineRunAndTheCliPngWriterAloneAndBatched) {
  const auto red = reference_pngs(small_request("a red circle", 7, 2));
  const auto blue = reference_pngs(small_request("a blue square", 9, 2));
  ASSERT_EQ(red.size(), 2u);
  open();
  // Both requests wait in the queue before the loop starts: they batch into one engine run.
  Answer first, second;
  std::thread a([&] { first = answer_of(post(small_body("a red circle", 7, 2))); });
  wait_for_depth(1);
  std::thread b([&] {
    second = answer_of(httplib::Client("127.0.0.1", server_->port())
                           .Post(kPath, small_body("a blue square", 9, 2), "application/json"));
  });
  wait_for_depth(2);
  start_loop();
  a.join();
  b.join();
  ASSERT_EQ(first.status, 200) << first.body;
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(decoded_images(json::parse(first.body)), red);
  EXPECT_EQ(decoded_images(json::parse(second.body)), blue);
  EXPECT_GT(json::parse(first.body).at("created").get<int64_t>(), 1700000000);
  EXPECT_EQ(metric("paradiff_batches_total"), 1);
  EXPECT_EQ(metric("paradiff_batched_requests_total"), 2);

  // Alone (no batching), the same request gives the same bytes.
  auto alone = post(small_body("a red circle", 7, 2));
  ASSERT_EQ(alone->status, 200) << alone->body;
  EXPECT_EQ(decoded_images(json::parse(alone->body)), red);
  EXPECT_EQ(metric("paradiff_images_generated_total"), 6);
  EXPECT_EQ(
      metric("paradiff_http_responses_total{route=\"/v1/images/generations\",status=\"200\"}"), 3);
  EXPECT_GT(metric("paradiff_last_run_steps_per_second"), 0);
}

TEST_F(ServerTest, BadRequestsAnswer400Or413NamingTheFieldAndEngineErrors500) {
  ServerLimits limits;
  limits.max_steps = 4;
  limits.max_pixels = 64 * 64;
  limits.max_guidance_scale = 1e39;
  open(limits);
  start_loop();
  struct Case {
    std::string body;
    int status;
    std::string param, message;
  };
  const Case cases[] = {
      {"{not json", 400, "", "not valid JSON"},
      {R"({"prompt":"x","size":"48by32"})", 400, "size", "48by32"},
      {R"({"prompt":"x","response_format":"url"})", 400, "response_format", "url"},
      {R"({"prompt":"x","size":"128x128"})", 413, "size", "16384 pixels"},
      {R"({"prompt":"x","num_inference_steps":5})", 413, "num_inference_steps", "is 5"},
      {R"({"prompt":"x","n":100})", 413, "n", "n is 100"},
      // Checked by the model (resolve): 400 with the engine's message.
      {R"({"prompt":"x","size":"48x32","max_sequence_length":100000})", 400, "",
       "max_sequence_length"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    auto res = post(c.body);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, c.status);
    const json error = json::parse(res->body).at("error");
    EXPECT_NE(error.at("message").get<std::string>().find(c.message), std::string::npos)
        << res->body;
    if (c.param.empty())
      EXPECT_TRUE(error.at("param").is_null()) << res->body;
    else
      EXPECT_EQ(error.at("param"), c.param);
  }
  // A body over 1 MiB is refused before it is parsed.
  auto huge = post(json{{"prompt", std::string(2 << 20, 'x')}}.dump());
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 413);
  EXPECT_NE(huge->body.find("too large"), std::string::npos) << huge->body;
  auto missing = client_->Get("/no/such/path");
  EXPECT_EQ(missing->status, 404);
  EXPECT_TRUE(json::parse(missing->body).contains("error"));
  // A run the engine fails (guidance so large the latents overflow, allowed by this server's
  // limits) answers 500 with the engine's message; on one process the server goes on.
  auto failed = post(R"({"prompt":"x","size":"16x16","num_inference_steps":1,
                         "max_sequence_length":8,"guidance_scale":1e38})");
  EXPECT_EQ(failed->status, 500);
  EXPECT_NE(failed->body.find("NaN or infinite"), std::string::npos) << failed->body;
  EXPECT_EQ(metric("paradiff_requests_failed_total"), 1);
  // The server still generates.
  auto ok = post(small_body("a red circle", 1, 1));
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(
      metric("paradiff_http_responses_total{route=\"/v1/images/generations\",status=\"400\"}"), 4);
  EXPECT_EQ(
      metric("paradiff_http_responses_total{route=\"/v1/images/generations\",status=\"413\"}"), 4);
}

TEST_F(ServerTest, AFullQueueAnswers429AndShutdownFailsWaitingRequestsWith503) {
  ServerLimits limits;
  limits.max_queue = 1;
  open(limits);
  Answer waiting;
  std::thread a([&] { waiting = answer_of(post(small_body("a red circle", 1, 1))); });
  wait_for_depth(1);
  auto refused = httplib::Client("127.0.0.1", server_->port())
                     .Post(kPath, small_body("a blue square", 1, 1), "application/json");
  EXPECT_EQ(refused->status, 429);
  EXPECT_NE(refused->body.find("the queue is full"), std::string::npos) << refused->body;
  // SIGTERM's path: the stop is seen before the waiting request runs.
  stop_ = true;
  start_loop();
  loop_.join();
  a.join();
  EXPECT_EQ(waiting.status, 503);
  EXPECT_NE(waiting.body.find("shutting down"), std::string::npos) << waiting.body;
  // It no longer listens.
  EXPECT_FALSE(httplib::Client("127.0.0.1", server_->port()).Get("/health"));
}

// The events of a streamed answer, as (name, data) in arrival order.
std::vector<std::pair<std::string, json>> parse_events(const std::string& stream) {
  std::vector<std::pair<std::string, json>> events;
  std::istringstream in(stream);
  std::string line, name;
  while (std::getline(in, line)) {
    if (line.rfind("event: ", 0) == 0) name = line.substr(7);
    if (line.rfind("data: ", 0) == 0) events.emplace_back(name, json::parse(line.substr(6)));
  }
  return events;
}

TEST_F(ServerTest, StreamsProgressEventsInOrderThenTheResultOrAnError) {
  const auto red = reference_pngs(small_request("a red circle", 3, 1));
  ServerLimits limits;
  limits.max_guidance_scale = 1e39;
  open(limits);
  start_loop();
  httplib::Request req;
  req.method = "POST";
  req.path = std::string(kPath) + "?stream=1";
  req.body = small_body("a red circle", 3, 1);
  req.set_header("Content-Type", "application/json");
  std::string stream;
  req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    stream.append(data, size);
    return true;
  };
  auto res = client_->send(req);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  const auto events = parse_events(stream);
  ASSERT_GE(events.size(), 2u) << stream;
  int64_t last_step = -1;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_EQ(events[i].first, "progress");
    EXPECT_EQ(events[i].second.at("total"), 2);
    const int64_t step = events[i].second.at("step");
    EXPECT_GE(step, last_step);
    last_step = step;
  }
  EXPECT_EQ(last_step, 2) << stream;
  EXPECT_EQ(events.back().first, "result");
  EXPECT_EQ(decoded_images(events.back().second), red);
  EXPECT_EQ(events.back().second.at("id"), events.front().second.at("id"));

  // A run that fails ends the stream with an error event (status 500, the engine's message).
  stream.clear();
  req.body = json{
      {"prompt", "x"},
      {"size", "16x16"},
      {"num_inference_steps", 1},
      {"max_sequence_length", 8},
      {"guidance_scale",
       1e38}}.dump();
  auto failed = client_->send(req);
  ASSERT_TRUE(failed);
  const auto failure = parse_events(stream);
  ASSERT_FALSE(failure.empty()) << stream;
  EXPECT_EQ(failure.back().first, "error");
  EXPECT_EQ(failure.back().second.at("status"), 500);
  EXPECT_NE(failure.back().second.at("error").at("message").get<std::string>().find("NaN"),
            std::string::npos)
      << stream;
}

TEST_F(ServerTest, AStreamingClientThatGoesAwayCancelsItsRun) {
  ServerLimits limits;
  limits.max_steps = 5000;
  open(limits);
  start_loop();
  httplib::Request req;
  req.method = "POST";
  req.path = kPath;
  req.body = json{
      {"prompt", "a red circle"},
      {"size", "32x32"},
      {"num_inference_steps", 5000},
      {"max_sequence_length", 8},
      {"stream",
       true}}.dump();
  req.set_header("Content-Type", "application/json");
  std::string stream;
  // Hang up at the first event of the running request.
  req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    stream.append(data, size);
    return stream.find("\"state\":\"running\"") == std::string::npos;
  };
  auto res = client_->send(req);
  EXPECT_FALSE(res);  // the client cancelled
  for (int i = 0; i < 1000 && metric("paradiff_requests_cancelled_total") != 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(metric("paradiff_requests_cancelled_total"), 1);
  EXPECT_EQ(metric("paradiff_runs_stopped_total"), 1);  // before its 5000th step
  EXPECT_EQ(metric("paradiff_images_generated_total"), 0);
  // Its slot is free: the next request runs at once.
  auto next = post(small_body("a blue square", 1, 1));
  EXPECT_EQ(next->status, 200) << next->body;
  EXPECT_EQ(metric("paradiff_images_generated_total"), 1);
}

TEST_F(ServerTest, AStreamingClientThatGoesAwayWhileWaitingFreesItsPlace) {
  ServerLimits limits;
  limits.max_queue = 1;
  open(limits);  // the loop is not running: requests wait
  httplib::Request req;
  req.method = "POST";
  req.path = std::string(kPath) + "?stream=1";
  req.body = small_body("a red circle", 1, 1);
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [](const char*, size_t, uint64_t, uint64_t) { return false; };
  EXPECT_FALSE(client_->send(req));  // hangs up at the first event ("waiting")
  // The server notices at a keep-alive write and drops the request: the queue is free.
  wait_for_depth(0);
  Answer next;
  std::thread a([&] { next = answer_of(post(small_body("a blue square", 1, 1))); });
  wait_for_depth(1);
  start_loop();
  a.join();
  EXPECT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(metric("paradiff_requests_cancelled_total"), 1);
  EXPECT_EQ(metric("paradiff_batches_total"), 1);  // the dropped request never ran
}

TEST_F(ServerTest, APlainClientThatGoesAwayWhileWaitingFreesItsPlace) {
  ServerLimits limits;
  limits.max_queue = 1;
  open(limits);  // the loop is not running: requests wait
  // A client that stops waiting for its (non-streamed) answer after 300 ms and closes the
  // connection; the server sees the hang-up within 250 ms and drops the request.
  httplib::Client impatient("127.0.0.1", server_->port());
  impatient.set_read_timeout(0, 300000);
  EXPECT_FALSE(impatient.Post(kPath, small_body("a red circle", 1, 1), "application/json"));
  impatient.stop();
  wait_for_depth(0);
  Answer next;
  std::thread a([&] { next = answer_of(post(small_body("a blue square", 1, 1))); });
  wait_for_depth(1);
  start_loop();
  a.join();
  EXPECT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(metric("paradiff_requests_cancelled_total"), 1);
  EXPECT_EQ(metric("paradiff_batches_total"), 1);  // the dropped request never ran
}

TEST_F(ServerTest, HealthModelsAndThePageAnswer) {
  open();
  start_loop();
  auto health = client_->Get("/health");
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(json::parse(health->body).at("status"), "ok");
  auto models = client_->Get("/v1/models");
  ASSERT_EQ(models->status, 200);
  const json model = json::parse(models->body).at("data").at(0);
  EXPECT_EQ(model.at("id"), "tiny");
  EXPECT_EQ(model.at("pipeline"), "FluxPipeline");
  auto page = client_->Get("/");
  ASSERT_EQ(page->status, 200);
  for (const char* id : {"id=\"prompt\"", "id=\"generate\"", "id=\"progress\"", "id=\"gallery\""})
    EXPECT_NE(page->body.find(id), std::string::npos) << id;
  auto metrics = client_->Get("/metrics");
  EXPECT_NE(metrics->body.find("# TYPE paradiff_queue_depth gauge\nparadiff_queue_depth 0"),
            std::string::npos)
      << metrics->body;
}

}  // namespace
}  // namespace paradiff::server
