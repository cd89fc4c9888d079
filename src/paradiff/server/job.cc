#include "paradiff/server/job.h"

namespace paradiff::server {

void Job::set_running() {
  std::lock_guard lock(mutex_);
  state_.state = State::Running;
  state_.steps = request_.num_inference_steps;
  ++state_.version;
  changed_.notify_all();
}

void Job::set_progress(int64_t step, int64_t steps) {
  std::lock_guard lock(mutex_);
  state_.step = step;
  state_.steps = steps;
  ++state_.version;
  changed_.notify_all();
}

void Job::finish(std::vector<std::string> png) {
  std::lock_guard lock(mutex_);
  if (state_.state == State::Done || state_.state == State::Failed) return;
  state_.state = State::Done;
  state_.png = std::move(png);
  ++state_.version;
  changed_.notify_all();
}

void Job::fail(const ApiError& error) {
  std::lock_guard lock(mutex_);
  if (state_.state == State::Done || state_.state == State::Failed) return;
  state_.state = State::Failed;
  state_.error = error;
  ++state_.version;
  changed_.notify_all();
}

Job::Snapshot Job::wait_change(uint64_t seen, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return state_.version > seen; });
  return state_;
}

Job::Snapshot Job::wait_finished() const {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return state_.state == State::Done || state_.state == State::Failed; });
  return state_;
}

}  // namespace paradiff::server
