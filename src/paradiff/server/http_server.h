// The HTTP front of paradiff serve, on rank 0: the routes (OpenAI Images API, models, health,
// metrics, the web page) on cpp-httplib, listening on its own threads. A generation route
// checks the request, queues it and waits for its job (or streams the job's progress as
// Server-Sent Events); the engine work happens in the serve loop, never on these threads.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "paradiff/server/image_request.h"
#include "paradiff/server/metrics.h"
#include "paradiff/server/request_queue.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace paradiff::server {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port
  ServerLimits limits;
  std::string model_name;      // GET /v1/models: the model folder's name
  std::string pipeline_class;  // and its pipeline class
};

class HttpServer {
 public:
  // resolve: completes a parsed request as the model will run it (the default size, rounding)
  // and throws paradiff::Error for what the model refuses.
  using Resolve = std::function<void(ImageRequest&)>;

  HttpServer(const HttpOptions& options, RequestQueue& queue, Metrics& metrics, Resolve resolve);
  ~HttpServer();

  // Binds (throws naming host and port when it cannot) and starts answering on a thread.
  void start();
  int port() const { return port_; }
  std::string url() const;

  // Stops listening and waits for the handlers to send their answers.
  void stop();

 private:
  void add_routes();
  // POST /v1/images/generations: one JSON body when the job ends, or its Server-Sent Events.
  void generate_images(const httplib::Request& req, httplib::Response& res);

  HttpOptions options_;
  RequestQueue& queue_;
  Metrics& metrics_;
  Resolve resolve_;
  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
  int port_ = 0;
};

}  // namespace paradiff::server
