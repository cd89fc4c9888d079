// paradiff serve as one object on every rank: the engine's serve loop everywhere, and on rank 0
// the queue, the metrics and the HTTP front. Rank 0 listens; the other ranks follow its batches.
#pragma once

#include <functional>
#include <memory>

#include "paradiff/engine/engine.h"
#include "paradiff/server/http_server.h"
#include "paradiff/server/serve_loop.h"

namespace paradiff::server {

class Server {
 public:
  // Collective: every rank constructs it with the same options. Rank 0 binds the port (throws
  // naming host and port when it cannot) and answers from now on.
  Server(engine::Engine& engine, const HttpOptions& options);
  ~Server();

  // Rank 0: where it listens (the port chosen when options.port was 0).
  int port() const;
  std::string url() const;
  Metrics* metrics() { return metrics_.get(); }

  // Every rank: serves until stop_requested() turns true on rank 0 (SIGTERM). Then it refuses
  // new requests (503), fails the waiting ones with 503, lets the batch in flight finish and
  // answer, stops listening, and returns on every rank.
  void run(const std::function<bool()>& stop_requested);

 private:
  engine::Engine& engine_;
  std::unique_ptr<RequestQueue> queue_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<HttpServer> http_;
};

}  // namespace paradiff::server
