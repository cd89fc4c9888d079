// The requests waiting to run, bounded: a full queue refuses with 429, a closed one (shutting
// down) with 503. The serve loop takes them in batches: the oldest waiting request and the
// later ones that can share its engine run (same size, steps, guidance, n), up to max_batch, so
// the engine spreads their images over the data-parallel replicas in one run.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "paradiff/server/job.h"

namespace paradiff::server {

class RequestQueue {
 public:
  RequestQueue(int64_t capacity, int64_t max_batch);

  // Queues the request as a new job; ApiError 429 when `capacity` requests already wait (not
  // counting those whose client went away), 503 once closed.
  std::shared_ptr<Job> push(ImageRequest request);

  // Waits up to `timeout` for a batch and removes it from the queue (empty: none came, or
  // closed). Jobs cancelled while waiting are dropped (failed) rather than run.
  std::vector<std::shared_ptr<Job>> take_batch(std::chrono::milliseconds timeout);

  // Refuses new requests from now on and returns the ones still waiting (for the caller to
  // fail).
  std::vector<std::shared_ptr<Job>> close();

  // Requests waiting now (those cancelled while waiting are dropped first).
  int64_t depth();
  bool closed() const;
  // Requests dropped because their client went away while they waited.
  int64_t dropped() const;

 private:
  // Fails and removes the waiting jobs whose client went away (the lock held): their places
  // are free again.
  void drop_cancelled();

  const int64_t capacity_, max_batch_;
  mutable std::mutex mutex_;
  std::condition_variable arrived_;
  std::deque<std::shared_ptr<Job>> waiting_;
  int64_t next_id_ = 1, dropped_ = 0;
  bool closed_ = false;
};

}  // namespace paradiff::server
