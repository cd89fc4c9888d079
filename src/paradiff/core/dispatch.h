// The one place where a runtime device or dtype becomes a compile-time choice: a kernel's
// dispatch file (kernels/<op>.cc) checks its inputs, then calls
//
//   dispatch_device("gelu_tanh", common_device("gelu_tanh", x, out),
//                   [&]<DeviceKind D>() { impl::gelu_tanh<D>(x, out); });
//
// and each device's file defines its impl::gelu_tanh<DeviceKind::...>. A device this build has
// no backend for is refused here, with the op and the device named.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "paradiff/core/device.h"
#include "paradiff/core/dtype.h"

namespace paradiff {

// Throws "<op>: no <device> implementation in this build".
[[noreturn]] void throw_no_backend(std::string_view op, Device device);
// Throws "<op>: tensors on different devices: <first> and <other> (<tensor>)".
[[noreturn]] void throw_device_mismatch(std::string_view op, Device first, Device other,
                                        const std::string& tensor);
// Throws "<op>: needs f32 or bf16, got <dtype>".
[[noreturn]] void throw_not_f32_or_bf16(std::string_view op, DType dtype);

// Calls fn.template operator()<D>() for the device's kind (a lambda `[&]<DeviceKind D>() {...}`).
template <typename Fn>
decltype(auto) dispatch_device(std::string_view op, Device device, Fn&& fn) {
  switch (device.kind) {
    case DeviceKind::CPU:
      return fn.template operator()<DeviceKind::CPU>();
    case DeviceKind::CUDA:
#if defined(PARADIFF_WITH_CUDA)
      return fn.template operator()<DeviceKind::CUDA>();
#else
      break;
#endif
  }
  throw_no_backend(op, device);
}

// The device of the defined tensors among `tensors` (any type with defined(), device() and
// describe()); the CPU when none is defined. Throws, naming `op`, if they are on different devices.
template <typename... Tensors>
Device common_device(std::string_view op, const Tensors&... tensors) {
  bool found = false;
  Device device = Device::cpu();
  auto visit = [&](const auto& t) {
    if (!t.defined()) return;
    if (!found) {
      found = true;
      device = t.device();
    } else if (!(t.device() == device)) {
      throw_device_mismatch(op, device, t.device(), t.describe());
    }
  };
  (visit(tensors), ...);
  return device;
}

// Calls fn with a value of the C++ element type for the runtime tag.
template <typename Fn>
decltype(auto) dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::F32:
      return fn(float{});
    case DType::BF16:
      return fn(bf16{});
    case DType::F16:
      return fn(f16{});
    case DType::I64:
      return fn(int64_t{});
  }
  __builtin_unreachable();
}

// The same for the two dtypes the compute kernels take: fn(float{}) or fn(bf16{}); any other
// dtype is refused, naming `op`.
template <typename Fn>
decltype(auto) dispatch_f32_bf16(std::string_view op, DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::F32:
      return fn(float{});
    case DType::BF16:
      return fn(bf16{});
    case DType::F16:
    case DType::I64:
      break;
  }
  throw_not_f32_or_bf16(op, dtype);
}

}  // namespace paradiff
