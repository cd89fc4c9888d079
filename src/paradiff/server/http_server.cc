#include "paradiff/server/http_server.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "paradiff/io/base64.h"
#include "paradiff/server/connection_watch.h"
#include "paradiff/server/web_page.h"

namespace paradiff::server {

namespace {

using nlohmann::json;

void send_error(httplib::Response& res, const ApiError& error) {
  res.status = error.status();
  res.set_content(error.json(), "application/json");
}

// OpenAI's ImagesResponse: {"created": <unix time>, "data": [{"b64_json": <PNG>}, ...]}.
json images_json(const Job::Snapshot& done) {
  json data = json::array();
  for (const auto& png : done.png) data.push_back({{"b64_json", base64_encode(png)}});
  return {{"created", static_cast<int64_t>(std::time(nullptr))}, {"data", data}};
}

std::string event(const char* name, const json& data) {
  return str_cat("event: ", name, "\ndata: ", data.dump(), "\n\n");
}

// The Server-Sent Events of one job: progress at every step, then the result (or an error). It
// looks at the job when its state changes; the steps that passed between two looks (the last
// one and the result often come together) are sent then, so each step is sent once, in order.
class EventStream {
 public:
  explicit EventStream(std::shared_ptr<Job> job) : job_(std::move(job)) {}

  // Waits up to 250 ms for a change and returns the text to send: the new events, or a comment
  // when nothing changed (writing it finds out whether the client is still there). `finished`:
  // the text ends the stream.
  std::string next(bool& finished) {
    const Job::Snapshot s = job_->wait_change(version_, std::chrono::milliseconds(250));
    if (s.version == version_) return ": waiting\n\n";
    version_ = s.version;
    std::string text;
    if (s.state == Job::State::Waiting) {
      text = progress(s.step, "waiting");
    } else if (s.steps > 0) {  // it has run: the steps not sent yet
      for (int64_t step = step_ + 1; step <= s.step; ++step) text += progress(step, "running");
      if (s.state == Job::State::Running && s.step <= step_)
        text = progress(s.step, "running");  // changed, but no new step
      step_ = std::max(step_, s.step);
    }
    if (s.state == Job::State::Done) {
      json result = images_json(s);
      result["id"] = job_->name();
      text += event("result", result);
      finished = true;
    } else if (s.state == Job::State::Failed) {
      json error = json::parse(s.error->json());
      error["id"] = job_->name();
      error["status"] = s.error->status();
      text += event("error", error);
      finished = true;
    }
    return text;
  }

 private:
  std::string progress(int64_t step, const char* state) const {
    return event("progress", {{"id", job_->name()},
                              {"state", state},
                              {"step", step},
                              {"total", job_->request().num_inference_steps}});
  }

  std::shared_ptr<Job> job_;
  uint64_t version_ = 0;
  int64_t step_ = -1;  // the last step sent as running
};

// The JSON error a status without a body gets (404 for an unknown path, 413 for a body over
// the payload limit, ...).
std::string status_error(int status) {
  const char* message = status == 404   ? "no such endpoint"
                        : status == 405 ? "method not allowed"
                        : status == 413 ? "the request body is too large"
                                        : "request failed";
  return ApiError(status, "invalid_request_error", "", message).json();
}

}  // namespace

HttpServer::HttpServer(const HttpOptions& options, RequestQueue& queue, Metrics& metrics,
                       Resolve resolve)
    : options_(options),
      queue_(queue),
      metrics_(metrics),
      resolve_(std::move(resolve)),
      http_(std::make_unique<httplib::Server>()) {
  // One thread per request that may be waiting or running, and a few for the quick routes.
  const size_t threads =
      static_cast<size_t>(options.limits.max_queue + options.limits.max_batch + 4);
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(1 << 20);
  add_routes();
}

HttpServer::~HttpServer() {
  stop();
}

std::string HttpServer::url() const {
  return str_cat("http://", options_.host, ":", port_, "/");
}

void HttpServer::add_routes() {
  // Counted before the response is written (httplib's logger runs after), so a client that has
  // its answer always finds it in /metrics.
  http_->set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    static const char* const routes[] = {"/", "/health", "/metrics", "/v1/models",
                                         "/v1/images/generations"};
    std::string route = "other";
    for (const char* known : routes)
      if (req.path == known) route = known;
    metrics_.count_response(route, res.status);
  });
  http_->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty() && !res.is_chunked_content_provider_)
      res.set_content(status_error(res.status), "application/json");
  });
  http_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
        std::string message = "internal error";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          message = e.what();
        } catch (...) {
        }
        send_error(res, ApiError(500, "server_error", "", message));
      });

  http_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    const std::string_view page = web_page();
    res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
  });
  http_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (queue_.closed()) {
      res.status = 503;
      res.set_content(R"({"status":"shutting down"})", "application/json");
      return;
    }
    res.set_content(json{{"status", "ok"}, {"queue_depth", queue_.depth()}}.dump(),
                    "application/json");
  });
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    const int64_t depth = queue_.depth();
    res.set_content(metrics_.render(depth, queue_.dropped()), "text/plain; version=0.0.4");
  });
  http_->Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    const json model = {{"id", options_.model_name},
                        {"object", "model"},
                        {"owned_by", "paradiff"},
                        {"pipeline", options_.pipeline_class}};
    res.set_content(json{{"object", "list"}, {"data", json::array({model})}}.dump(),
                    "application/json");
  });

  http_->Post(
      "/v1/images/generations",
      [this](const httplib::Request& req, httplib::Response& res) { generate_images(req, res); });
}

void HttpServer::generate_images(const httplib::Request& req, httplib::Response& res) {
  std::shared_ptr<Job> job;
  try {
    ImageRequest request = parse_image_request(req.body, options_.limits);
    if (req.has_param("stream")) {
      const std::string v = req.get_param_value("stream");
      request.stream = v == "1" || v == "true";
    }
    try {
      resolve_(request);
    } catch (const ApiError&) {
      throw;
    } catch (const Error& e) {
      throw bad_request("", e.what());
    }
    job = queue_.push(std::move(request));
  } catch (const ApiError& e) {
    send_error(res, e);
    return;
  }
  if (!job->request().stream) {
    // One body at the end: while waiting, look every 250 ms whether the client hung up; if it
    // did, cancel the job (freeing its place) and answer nobody.
    const ConnectionWatch client(req.remote_addr, req.remote_port);
    Job::Snapshot done = job->wait_change(0, std::chrono::milliseconds(0));
    while (done.state != Job::State::Done && done.state != Job::State::Failed) {
      if (client.hung_up()) {
        job->cancel();
        return;
      }
      done = job->wait_change(done.version, std::chrono::milliseconds(250));
    }
    if (done.state == Job::State::Done)
      res.set_content(images_json(done).dump(), "application/json");
    else
      send_error(res, *done.error);
    return;
  }
  // Server-Sent Events (EventStream). A write that fails means the client went away: the job is
  // cancelled, which frees its slot (the engine stops at the next step once every request of its
  // batch is cancelled).
  res.set_header("Cache-Control", "no-cache");
  auto stream = std::make_shared<EventStream>(job);
  res.set_chunked_content_provider(
      "text/event-stream",
      [job, stream](size_t, httplib::DataSink& sink) {
        bool finished = false;
        const std::string text = stream->next(finished);
        if (!sink.write(text.data(), text.size())) {
          job->cancel();
          return false;
        }
        if (finished) sink.done();
        return true;
      },
      [job](bool success) {
        if (!success) job->cancel();
      });
}

void HttpServer::start() {
  if (options_.port == 0) {
    port_ = http_->bind_to_any_port(options_.host);
  } else {
    port_ = http_->bind_to_port(options_.host, options_.port) ? options_.port : -1;
  }
  PARADIFF_CHECK(port_ > 0, "paradiff serve cannot listen on ", options_.host, ":", options_.port,
                 " (in use, or not an address of this machine)");
  listener_ = std::thread([this] { http_->listen_after_bind(); });
}

void HttpServer::stop() {
  if (!listener_.joinable()) return;
  http_->stop();
  listener_.join();
}

}  // namespace paradiff::server
