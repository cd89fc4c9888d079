#include "paradiff/server/server.h"

#include <csignal>
#include <filesystem>

namespace paradiff::server {

Server::Server(engine::Engine& engine, const HttpOptions& options) : engine_(engine) {
  if (engine.world().rank() != 0) return;
  // A client that closes its socket must not end the process (SIGPIPE) while it is written to.
  std::signal(SIGPIPE, SIG_IGN);
  queue_ = std::make_unique<RequestQueue>(options.limits.max_queue, options.limits.max_batch);
  metrics_ = std::make_unique<Metrics>();
  HttpOptions named = options;
  if (named.model_name.empty())
    named.model_name =
        std::filesystem::path(engine.options().model).lexically_normal().filename().string();
  if (named.model_name.empty())  // a folder given with a trailing slash
    named.model_name = std::filesystem::path(engine.options().model)
                           .lexically_normal()
                           .parent_path()
                           .filename()
                           .string();
  if (named.pipeline_class.empty()) named.pipeline_class = engine.pipeline().class_name();
  auto resolve = [&engine, limits = options.limits](ImageRequest& request) {
    const engine::GenerationRequest g = to_generation_request({&request});
    const pipeline::GenerationOptions o = engine.resolve(g);
    request.width = o.width;
    request.height = o.height;
    check_resolved_size(o.width, o.height, limits);
  };
  http_ = std::make_unique<HttpServer>(named, *queue_, *metrics_, resolve);
  http_->start();
}

Server::~Server() = default;

int Server::port() const {
  return http_ ? http_->port() : 0;
}
std::string Server::url() const {
  return http_ ? http_->url() : std::string();
}

void Server::run(const std::function<bool()>& stop_requested) {
  const bool root = engine_.world().rank() == 0;
  ServeLoop loop(engine_, root ? queue_.get() : nullptr, root ? metrics_.get() : nullptr);
  auto on_stop = [this] {
    const auto waiting = queue_->close();
    metrics_->count_failed(static_cast<int64_t>(waiting.size()));
    for (const auto& job : waiting)
      job->fail(ApiError(503, "server_shutting_down", "",
                         "the server is shutting down; the request did not run"));
  };
  try {
    loop.run(stop_requested, on_stop);
  } catch (...) {
    // A failed run under mpirun ends the job: answer what waits (503) and what ran (500)
    // before the error goes up and brings every rank down.
    if (root) {
      if (!queue_->closed()) on_stop();
      http_->stop();
    }
    throw;
  }
  if (root) http_->stop();
}

}  // namespace paradiff::server
