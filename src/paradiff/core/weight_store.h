// Where a model's long-lived, prepared weights live. By default they are ordinary tensor memory,
// private to the process. While a WeightStore is installed on the loading thread
// (WeightStoreScope), layers that prepare their weights once (kernels::Linear's packed copy) ask
// the store for the memory instead; the store may hand back memory that another process has
// already filled, which is how the ranks on one host share one copy (core/weight_arena.h,
// dist/host_weights.h). Models need not know: the seam is below them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace paradiff {

class WeightStore {
 public:
  using Fill = std::function<void(std::byte*)>;
  virtual ~WeightStore() = default;
  // kTensorAlignment-aligned memory of `bytes` bytes holding the weight identified by `key` (a
  // digest of the weight's source values and layout, see weight_digest). `fill` writes the
  // contents unless the store already holds them. The memory lives while the returned pointer
  // (or a copy) does.
  virtual std::shared_ptr<const std::byte> place(size_t bytes, uint64_t key, const Fill& fill) = 0;
};

// The store installed on this thread, or null (weights go to ordinary tensor memory).
WeightStore* current_weight_store();

// Installs `store` on this thread for the scope's lifetime (restoring the previous one after).
class WeightStoreScope {
 public:
  explicit WeightStoreScope(WeightStore* store);
  ~WeightStoreScope();
  WeightStoreScope(const WeightStoreScope&) = delete;
  WeightStoreScope& operator=(const WeightStoreScope&) = delete;

 private:
  WeightStore* previous_;
};

// A 64-bit digest of `bytes` bytes at `data`, continuing from `seed` (chain calls to add fields).
uint64_t weight_digest(const void* data, size_t bytes, uint64_t seed = 0);

}  // namespace paradiff
