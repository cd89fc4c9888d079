// Allocation per device, each device with its own current/peak accounting. The CPU's is
// memory.h (allocate_bytes, current_bytes(), peak_bytes()); a GPU backend adds its allocator
// as one more specialisation of device_allocator.
#pragma once

#include <cstddef>
#include <memory>

#include "paradiff/core/device.h"
#include "paradiff/core/memory.h"

namespace paradiff {

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Uninitialised memory, kTensorAlignment-aligned, that frees itself (and updates the
  // accounting) when the last owner goes away.
  virtual std::shared_ptr<std::byte> allocate(size_t bytes) = 0;
  virtual MemoryStats stats() const = 0;
  virtual void reset_peak() = 0;
};

// The allocator of `device`; throws if this build has no backend for it.
Allocator& allocator(Device device);

// One per device kind (core/allocator.cc: the CPU's).
template <DeviceKind D>
Allocator& device_allocator(int index);

}  // namespace paradiff
