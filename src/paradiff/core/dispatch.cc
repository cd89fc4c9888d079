#include "paradiff/core/dispatch.h"

#include "paradiff/core/error.h"

namespace paradiff {

void throw_no_backend(std::string_view op, Device device) {
  throw Error(str_cat(op, ": no ", device_name(device),
                      " implementation in this build (tensors must be on the cpu)"));
}

void throw_device_mismatch(std::string_view op, Device first, Device other,
                           const std::string& tensor) {
  throw Error(str_cat(op, ": tensors on different devices: ", device_name(first), " and ",
                      device_name(other), " (", tensor, ")"));
}

void throw_not_f32_or_bf16(std::string_view op, DType dtype) {
  throw Error(str_cat(op, ": needs f32 or bf16, got ", dtype_name(dtype)));
}

}  // namespace paradiff
