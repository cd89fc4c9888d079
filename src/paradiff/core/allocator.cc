#include "paradiff/core/allocator.h"

#include "paradiff/core/dispatch.h"

namespace paradiff {

namespace {
// The process-wide accounting of memory.h, as an Allocator.
class CpuAllocator final : public Allocator {
 public:
  std::shared_ptr<std::byte> allocate(size_t bytes) override { return allocate_bytes(bytes); }
  MemoryStats stats() const override { return memory_stats(); }
  void reset_peak() override { reset_peak_bytes(); }
};
}  // namespace

template <>
Allocator& device_allocator<DeviceKind::CPU>(int /*index*/) {
  static CpuAllocator cpu;
  return cpu;
}

Allocator& allocator(Device device) {
  return dispatch_device("allocate", device, [&]<DeviceKind D>() -> Allocator& {
    return device_allocator<D>(device.index);
  });
}

}  // namespace paradiff
