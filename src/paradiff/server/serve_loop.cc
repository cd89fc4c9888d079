#include "paradiff/server/serve_loop.h"

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "paradiff/core/logging.h"
#include "paradiff/dist/tensor_broadcast.h"
#include "paradiff/io/png.h"

namespace paradiff::server {

namespace {

constexpr int kHeaderTag = 201;

}  // namespace

std::string serialize_request(const engine::GenerationRequest& r) {
  nlohmann::json j = {{"prompt", r.prompt},
                      {"negative_prompt", r.negative_prompt},
                      {"height", r.height},
                      {"width", r.width},
                      {"num_inference_steps", r.num_inference_steps},
                      {"guidance_scale", r.guidance_scale},
                      {"true_cfg_scale", r.true_cfg_scale},
                      {"seed", r.seed},
                      {"seeds", r.seeds},
                      {"num_images_per_prompt", r.num_images_per_prompt},
                      {"max_sequence_length", r.max_sequence_length},
                      {"apply_padding", r.apply_padding}};
  return j.dump();
}

engine::GenerationRequest deserialize_request(const std::string& message) {
  const nlohmann::json j = nlohmann::json::parse(message);
  engine::GenerationRequest r;
  r.prompt = j.at("prompt").get<std::vector<std::string>>();
  r.negative_prompt = j.at("negative_prompt").get<std::vector<std::string>>();
  r.height = j.at("height");
  r.width = j.at("width");
  r.num_inference_steps = j.at("num_inference_steps");
  r.guidance_scale = j.at("guidance_scale");
  r.true_cfg_scale = j.at("true_cfg_scale");
  r.seed = j.at("seed");
  r.seeds = j.at("seeds").get<std::vector<uint64_t>>();
  r.num_images_per_prompt = j.at("num_images_per_prompt");
  r.max_sequence_length = j.at("max_sequence_length");
  r.apply_padding = j.at("apply_padding");
  return r;
}

ServeLoop::ServeLoop(engine::Engine& engine, RequestQueue* queue, Metrics* metrics)
    : engine_(engine), queue_(queue), metrics_(metrics) {
  PARADIFF_CHECK((engine.world().rank() == 0) == (queue != nullptr && metrics != nullptr),
                 "ServeLoop: rank 0, and only rank 0, holds the queue and the metrics");
}

void ServeLoop::send_message(const std::string& message) {
  dist::Communicator& world = engine_.world();
  if (world.size() == 1) return;
  // First a word to each rank (run or stop), then the request itself.
  int64_t run = message.empty() ? 0 : 1;
  std::vector<std::unique_ptr<dist::Request>> sends;
  for (int r = 1; r < world.size(); ++r)
    sends.push_back(world.isend(&run, sizeof(run), r, kHeaderTag));
  for (auto& s : sends) s->wait();
  if (run) {
    std::string text = message;
    dist::broadcast_string(world, text, 0);
  }
}

bool ServeLoop::receive_message(std::string& message) {
  dist::Communicator& world = engine_.world();
  int64_t run = 0;
  auto pending = world.irecv(&run, sizeof(run), 0, kHeaderTag);
  // An idle server waits here for as long as no request comes: sleep between polls instead of
  // spinning in a blocking receive.
  while (!pending->test()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (run == 0) return false;
  dist::broadcast_string(world, message, 0);
  return true;
}

engine::GenerationRequest ServeLoop::batch_request(
    const std::vector<std::shared_ptr<Job>>& jobs) const {
  std::vector<const ImageRequest*> requests;
  for (const auto& job : jobs) requests.push_back(&job->request());
  engine::GenerationRequest request = to_generation_request(requests);
  const int replicas = engine_.replicas();
  if (replicas > 1) {
    // Every replica must run (and so hear every step's cancel decision): repeat the last prompt
    // until each has an image; the padding's images are dropped.
    request.apply_padding = true;
    while (static_cast<int64_t>(request.prompt.size()) * request.num_images_per_prompt < replicas) {
      request.prompt.push_back(request.prompt.back());
      if (!request.negative_prompt.empty() && request.negative_prompt.size() > 1)
        request.negative_prompt.push_back(request.negative_prompt.back());
      if (!request.seeds.empty()) request.seeds.push_back(request.seeds.back());
    }
  }
  return request;
}

void ServeLoop::execute(const engine::GenerationRequest& request,
                        const std::vector<std::shared_ptr<Job>>& jobs) {
  dist::Communicator& world = engine_.world();
  const bool root = world.rank() == 0;
  auto on_step = [&](const pipeline::StepProgress& p, const std::vector<int64_t>&) {
    uint8_t cancel = 0;
    if (root) {
      if (!stopping_ && stop_requested_()) {
        stopping_ = true;
        on_stop_();
      }
      bool all_cancelled = true;
      for (const auto& job : jobs) {
        job->set_progress(p.step, p.steps);
        all_cancelled = all_cancelled && job->cancelled();
      }
      cancel = all_cancelled ? 1 : 0;
    }
    if (world.size() > 1) world.broadcast(&cancel, 1, 0);
    return cancel == 0;
  };
  try {
    engine_.mesh().reset_comm_stats();
    const engine::GenerationResult result = engine_.run(request, on_step);
    // Every rank says its share, so a log shows how the work was split.
    log_info("serve: batch of ", request.prompt.size(), " prompt(s) x ",
             request.num_images_per_prompt, " image(s): this rank's group ran ",
             result.stats.prompts_here, " image(s) in ", result.stats.steps, " steps; sent ",
             engine_.mesh().comm_stats().bytes_sent, " bytes; peak memory ",
             result.stats.peak_bytes / 1000000, " MB (largest rank)");
    if (!root) return;
    std::vector<std::vector<std::string>> png(jobs.size());
    for (size_t j = 0; j < jobs.size(); ++j)
      png[j].resize(static_cast<size_t>(request.num_images_per_prompt));
    for (const auto& image : result.images)
      if (image.index < static_cast<int64_t>(jobs.size()))
        png[static_cast<size_t>(image.index)][static_cast<size_t>(image.image_index)] =
            encode_png(image.image);
    metrics_->set_last_run(result.stats.steps, result.stats.denoise_seconds);
    for (size_t j = 0; j < jobs.size(); ++j) {
      if (jobs[j]->cancelled()) {
        metrics_->count_cancelled(1);
        jobs[j]->fail(ApiError(499, "cancelled", "", "the client went away"));
        continue;
      }
      metrics_->count_images(request.num_images_per_prompt);
      jobs[j]->finish(std::move(png[j]));
    }
  } catch (const pipeline::GenerationCancelled& e) {
    if (!root) return;
    metrics_->count_run_stopped();
    metrics_->count_cancelled(static_cast<int64_t>(jobs.size()));
    for (const auto& job : jobs) job->fail(ApiError(499, "cancelled", "", e.what()));
  } catch (const Error& e) {
    if (root) {
      log_warning("serve: the engine failed a batch of ", jobs.size(), " request(s): ", e.what());
      metrics_->count_failed(static_cast<int64_t>(jobs.size()));
      for (const auto& job : jobs) job->fail(ApiError(500, "engine_error", "", e.what()));
    }
    // On one process the server goes on. With several, the other ranks may be waiting in a
    // collective this rank will never join: the error ends the job, as any failed rank does.
    if (world.size() > 1) throw;
  }
}

void ServeLoop::run(const std::function<bool()>& stop_requested,
                    const std::function<void()>& on_stop) {
  stop_requested_ = stop_requested;
  on_stop_ = on_stop;
  if (engine_.world().rank() != 0) {
    for (std::string message; receive_message(message);) execute(deserialize_request(message), {});
    return;
  }
  while (true) {
    if (!stopping_ && stop_requested_()) {
      stopping_ = true;
      on_stop_();
    }
    if (stopping_) break;
    const auto jobs = queue_->take_batch(std::chrono::milliseconds(50));
    if (jobs.empty()) continue;
    const engine::GenerationRequest request = batch_request(jobs);
    send_message(serialize_request(request));
    for (const auto& job : jobs) job->set_running();
    metrics_->count_batch(static_cast<int64_t>(jobs.size()));
    metrics_->set_in_flight(static_cast<int64_t>(jobs.size()));
    execute(request, jobs);
    metrics_->set_in_flight(0);
  }
  send_message("");
}

}  // namespace paradiff::server
