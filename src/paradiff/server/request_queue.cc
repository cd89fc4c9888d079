#include "paradiff/server/request_queue.h"

namespace paradiff::server {

RequestQueue::RequestQueue(int64_t capacity, int64_t max_batch)
    : capacity_(capacity), max_batch_(max_batch) {
  PARADIFF_CHECK(capacity >= 1, "max_queue must be at least 1, got ", capacity);
  PARADIFF_CHECK(max_batch >= 1, "max_batch must be at least 1, got ", max_batch);
}

void RequestQueue::drop_cancelled() {
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if ((*it)->cancelled()) {
      (*it)->fail(ApiError(499, "cancelled", "", "the client went away before the request ran"));
      it = waiting_.erase(it);
      ++dropped_;
    } else {
      ++it;
    }
  }
}

std::shared_ptr<Job> RequestQueue::push(ImageRequest request) {
  std::lock_guard lock(mutex_);
  drop_cancelled();
  if (closed_) throw ApiError(503, "server_shutting_down", "", "the server is shutting down");
  if (static_cast<int64_t>(waiting_.size()) >= capacity_)
    throw ApiError(429, "queue_full", "",
                   str_cat("the queue is full: ", waiting_.size(),
                           " request(s) are waiting (max_queue ", capacity_, "); retry later"));
  auto job = std::make_shared<Job>(next_id_++, std::move(request));
  waiting_.push_back(job);
  arrived_.notify_one();
  return job;
}

std::vector<std::shared_ptr<Job>> RequestQueue::take_batch(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  std::vector<std::shared_ptr<Job>> batch;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (batch.empty()) {
    if (!arrived_.wait_until(lock, deadline, [&] { return closed_ || !waiting_.empty(); }))
      return batch;
    if (closed_) return batch;
    drop_cancelled();
    if (waiting_.empty()) continue;
    batch.push_back(waiting_.front());
    waiting_.pop_front();
    for (auto it = waiting_.begin();
         it != waiting_.end() && static_cast<int64_t>(batch.size()) < max_batch_;) {
      if (!(*it)->cancelled() && (*it)->request().batches_with(batch.front()->request())) {
        batch.push_back(*it);
        it = waiting_.erase(it);
      } else {
        ++it;
      }
    }
  }
  return batch;
}

std::vector<std::shared_ptr<Job>> RequestQueue::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  std::vector<std::shared_ptr<Job>> left(waiting_.begin(), waiting_.end());
  waiting_.clear();
  arrived_.notify_all();
  return left;
}

int64_t RequestQueue::depth() {
  std::lock_guard lock(mutex_);
  drop_cancelled();
  return static_cast<int64_t>(waiting_.size());
}

int64_t RequestQueue::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

bool RequestQueue::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

}  // namespace paradiff::server
