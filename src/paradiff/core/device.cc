#include "paradiff/core/device.h"

#include "paradiff/core/error.h"

namespace paradiff {

std::string_view device_kind_name(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::CPU:
      return "cpu";
    case DeviceKind::CUDA:
      return "cuda";
  }
  return "unknown";
}

std::string device_name(Device device) {
  if (device.is_cpu()) return "cpu";
  return str_cat(device_kind_name(device.kind), ":", device.index);
}

}  // namespace paradiff
