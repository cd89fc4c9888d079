// paradiff serve: the engine behind an HTTP API (OpenAI Images shape) and a web page. Every rank
// runs it; rank 0 listens and the others follow its batches. SIGTERM (or SIGINT) stops it
// cleanly: new requests are refused, waiting ones fail with 503, the batch in flight finishes,
// and every rank exits 0.
#include <csignal>
#include <cstdio>

#include "paradiff/cli/commands.h"
#include "paradiff/core/logging.h"
#include "paradiff/core/threads.h"
#include "paradiff/engine/engine.h"
#include "paradiff/server/server.h"

namespace paradiff::cli {

namespace {

volatile std::sig_atomic_t stop_signal = 0;

void on_stop_signal(int) {
  stop_signal = 1;
}

struct Options {
  std::string model, dtype = "fp32";
  int threads = 0;
  server::HttpOptions http;
  ParallelOptions parallel;
};

int run(const Options& o, dist::Communicator& world) {
  const bool root = world.rank() == 0;
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGINT, on_stop_signal);
  engine::EngineOptions engine_options;
  engine_options.model = o.model;
  engine_options.compute = compute_dtype(o.dtype);
  engine_options.parallel = o.parallel.config();
  // A server keeps every component loaded for the next request.
  engine_options.cache_policy = pipeline::ComponentCache::Policy::KeepLoaded;
  if (o.threads > 0) set_num_threads(o.threads);
  engine::Engine engine(world, engine_options);
  server::Server server(engine, o.http);
  if (root) {
    // The line scripts wait for (with --port 0, the only place the port is said).
    std::printf("paradiff serve: listening on %s (%d process(es): %d group(s)%s)\n",
                server.url().c_str(), world.size(), engine.replicas(),
                engine_options.parallel.replica_degree() > 1
                    ? str_cat(" of ", engine_options.parallel.describe()).c_str()
                    : "");
    std::fflush(stdout);
  }
  server.run([] { return stop_signal != 0; });
  if (root) log_info("paradiff serve: stopped");
  return 0;
}

}  // namespace

void add_serve_command(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  auto& h = o->http;
  auto& l = h.limits;
  CLI::App* cmd = app.add_subcommand(
      "serve", "HTTP server: OpenAI Images API, progress as Server-Sent Events, a web page");
  cmd->add_option("--model", o->model, "diffusers pipeline folder (model_index.json, ...)")
      ->required()
      ->envname("PARADIFF_MODEL");
  cmd->add_option("--host", h.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", h.port, "port to listen on (0: any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "compute precision: fp32 or bf16")
      ->envname("PARADIFF_DTYPE")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "kernel threads per process")
      ->envname("PARADIFF_THREADS");
  cmd->add_option("--max-queue", l.max_queue, "requests that may wait; beyond: 429")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}))
      ->capture_default_str();
  cmd->add_option("--max-n", l.max_n, "images per request (n); beyond: 413")
      ->check(CLI::Range(int64_t{1}, engine::kMaxImagesPerPrompt))
      ->capture_default_str();
  cmd->add_option("--max-steps", l.max_steps, "num_inference_steps; beyond: 413")
      ->check(CLI::Range(int64_t{1}, int64_t{10000}))
      ->capture_default_str();
  cmd->add_option("--max-pixels", l.max_pixels, "width x height; beyond: 413")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->capture_default_str();
  cmd->add_option("--max-batch", l.max_batch,
                  "waiting requests of the same size, steps, guidance and n run together "
                  "in one engine run (spread over the data-parallel groups)")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}))
      ->capture_default_str();
  add_parallel_options(*cmd, o->parallel, /*with_cfg=*/true);
  cmd->callback(
      [o, &action] { action = [o](dist::Communicator& world) { return run(*o, world); }; });
}

}  // namespace paradiff::cli
