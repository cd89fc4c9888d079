// The server's main loop, SPMD over the world: on rank 0 it takes the next batch of waiting
// requests from the queue and sends it (serialized) to every rank; every rank then calls
// Engine::run on it together. The step callback on rank 0 reports progress to the batch's jobs
// and decides whether to cancel (every job of the batch cancelled), and that decision goes to
// every rank at every step, so all ranks stop at the same step. Ranks other than 0 wait for rank
// 0's next message by polling (sleeping between polls) rather than spinning in a collective.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "paradiff/engine/engine.h"
#include "paradiff/server/metrics.h"
#include "paradiff/server/request_queue.h"

namespace paradiff::server {

class ServeLoop {
 public:
  // queue and metrics: rank 0's (null on the other ranks).
  ServeLoop(engine::Engine& engine, RequestQueue* queue, Metrics* metrics);

  // Runs batches until stop_requested() (asked on rank 0 between batches and at every step)
  // says so; the batch in flight then finishes, and the loop returns on every rank.
  // on_stop (rank 0) runs once, as soon as the stop is seen, before the batch in flight ends.
  // A run that fails answers its requests with 500; on one process the loop goes on, on
  // several the error is rethrown (ending the job: other ranks may be stuck in a collective).
  void run(const std::function<bool()>& stop_requested, const std::function<void()>& on_stop);

 private:
  // Rank 0: the engine request for a batch (padded so every data-parallel replica has work).
  engine::GenerationRequest batch_request(const std::vector<std::shared_ptr<Job>>& jobs) const;
  // Every rank: runs the request; on rank 0, answers the jobs.
  void execute(const engine::GenerationRequest& request,
               const std::vector<std::shared_ptr<Job>>& jobs);
  // Rank 0 sends `message` (empty: stop) to every rank; the others receive it.
  void send_message(const std::string& message);
  bool receive_message(std::string& message);

  engine::Engine& engine_;
  RequestQueue* queue_;
  Metrics* metrics_;
  std::function<bool()> stop_requested_;
  std::function<void()> on_stop_;
  bool stopping_ = false;
};

// The request as the message rank 0 sends, and back.
std::string serialize_request(const engine::GenerationRequest& request);
engine::GenerationRequest deserialize_request(const std::string& message);

}  // namespace paradiff::server
