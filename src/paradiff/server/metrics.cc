#include "paradiff/server/metrics.h"

#include <sstream>

namespace paradiff::server {

void Metrics::count_response(const std::string& route, int status) {
  std::lock_guard lock(mutex_);
  ++responses_[{route, status}];
}

void Metrics::count_batch(int64_t requests) {
  ++batches_;
  batched_requests_ += requests;
}

void Metrics::set_last_run(int64_t steps, double denoise_seconds) {
  last_steps_per_second_ = denoise_seconds > 0 ? static_cast<double>(steps) / denoise_seconds : 0;
}

std::string Metrics::render(int64_t queue_depth, int64_t dropped) const {
  std::ostringstream out;
  auto metric = [&](const char* name, const char* type, const char* help, auto value) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n'
        << name << ' ' << value << '\n';
  };
  metric("paradiff_queue_depth", "gauge", "Requests waiting to run.", queue_depth);
  metric("paradiff_requests_in_flight", "gauge", "Requests in the engine run now.",
         in_flight_.load());
  metric("paradiff_images_generated_total", "counter", "Images generated and answered.",
         images_generated_.load());
  metric("paradiff_requests_failed_total", "counter",
         "Accepted requests that ended in an error (engine error, shutdown).",
         requests_failed_.load());
  metric("paradiff_requests_cancelled_total", "counter",
         "Accepted requests cancelled because their client went away.",
         requests_cancelled_.load() + dropped);
  metric("paradiff_runs_stopped_total", "counter",
         "Engine runs stopped before their last step: every request of the batch cancelled.",
         runs_stopped_.load());
  metric("paradiff_batches_total", "counter", "Engine runs (each one batch of requests).",
         batches_.load());
  metric("paradiff_batched_requests_total", "counter", "Requests run, summed over the batches.",
         batched_requests_.load());
  metric("paradiff_last_run_steps_per_second", "gauge",
         "Denoising steps per second of the last engine run.", last_steps_per_second_.load());
  out << "# HELP paradiff_http_responses_total HTTP responses by route and status.\n"
      << "# TYPE paradiff_http_responses_total counter\n";
  std::lock_guard lock(mutex_);
  for (const auto& [key, count] : responses_)
    out << "paradiff_http_responses_total{route=\"" << key.first << "\",status=\"" << key.second
        << "\"} " << count << '\n';
  return out.str();
}

}  // namespace paradiff::server
