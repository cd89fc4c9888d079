// One accepted image request through its life: waiting, running (step by step), then done (its
// PNGs) or failed (an ApiError). The HTTP thread that answers the client waits on it; the serve
// loop on rank 0 moves it along; a client that goes away marks it cancelled.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "paradiff/server/api_error.h"
#include "paradiff/server/image_request.h"

namespace paradiff::server {

class Job {
 public:
  enum class State { Waiting, Running, Done, Failed };

  // What a waiter sees: a copy taken under the lock.
  struct Snapshot {
    State state = State::Waiting;
    int64_t step = 0, steps = 0;
    uint64_t version = 0;           // grows with every change
    std::vector<std::string> png;   // Done: n PNG files' bytes
    std::optional<ApiError> error;  // Failed
  };

  Job(int64_t id, ImageRequest request) : id_(id), request_(std::move(request)) {}

  int64_t id() const { return id_; }
  std::string name() const { return "img-" + std::to_string(id_); }
  const ImageRequest& request() const { return request_; }

  void set_running();
  void set_progress(int64_t step, int64_t steps);
  void finish(std::vector<std::string> png);
  void fail(const ApiError& error);

  // The client went away: the job's result is no longer wanted.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  // Waits until the version passes `seen` or the timeout; returns the state then.
  Snapshot wait_change(uint64_t seen, std::chrono::milliseconds timeout) const;
  // Waits until Done or Failed.
  Snapshot wait_finished() const;

 private:
  const int64_t id_;
  const ImageRequest request_;
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  Snapshot state_;
};

}  // namespace paradiff::server
