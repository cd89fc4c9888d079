// Where a tensor's storage lives. Every tensor is on the CPU today; the tag exists so that a
// kernel can refuse, by name, a tensor it has no implementation for, and so that a GPU backend
// adds files (kernels/cuda/) rather than editing every op.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace paradiff {

enum class DeviceKind : uint8_t { CPU, CUDA };

struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;  // which device of that kind; always 0 for the CPU

  static constexpr Device cpu() { return {DeviceKind::CPU, 0}; }
  static constexpr Device cuda(int index = 0) { return {DeviceKind::CUDA, index}; }
  bool is_cpu() const { return kind == DeviceKind::CPU; }
  friend bool operator==(const Device&, const Device&) = default;
};

// "cpu", "cuda".
std::string_view device_kind_name(DeviceKind kind);
// "cpu" for the CPU, "cuda:1" for others.
std::string device_name(Device device);

}  // namespace paradiff
