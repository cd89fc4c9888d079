// What GET /metrics reports, in Prometheus' text format: counters the routes and the serve loop
// bump (thread-safe), and the queue depth read when scraped.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace paradiff::server {

class Metrics {
 public:
  // route: the endpoint's path ("other" for paths the server does not have).
  void count_response(const std::string& route, int status);
  void count_batch(int64_t requests);
  void count_images(int64_t images) { images_generated_ += images; }
  void count_failed(int64_t requests) { requests_failed_ += requests; }
  void count_cancelled(int64_t requests) { requests_cancelled_ += requests; }
  // An engine run stopped before its last step (every request of its batch cancelled).
  void count_run_stopped() { runs_stopped_ += 1; }
  void set_in_flight(int64_t requests) { in_flight_ = requests; }
  void set_last_run(int64_t steps, double denoise_seconds);

  // The exposition text; queue_depth is the queue's length now, dropped the requests it
  // dropped because their client went away while they waited (counted as cancelled).
  std::string render(int64_t queue_depth, int64_t dropped) const;

  int64_t images_generated() const { return images_generated_; }
  int64_t requests_cancelled() const { return requests_cancelled_; }

 private:
  std::atomic<int64_t> images_generated_{0}, requests_failed_{0}, requests_cancelled_{0};
  std::atomic<int64_t> in_flight_{0}, batches_{0}, batched_requests_{0}, runs_stopped_{0};
  std::atomic<double> last_steps_per_second_{0};
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> responses_;  // by route and HTTP status
};

}  // namespace paradiff::server
