// Element types a Tensor can hold, and the scalar conversions between them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

namespace paradiff {

enum class DType : uint8_t { F32, BF16, F16, I64 };

// Bytes per element.
size_t dtype_size(DType dtype);
// "f32", "bf16", "f16", "i64".
std::string_view dtype_name(DType dtype);
// Parses "f32"/"fp32"/"float32", "bf16"/"bfloat16", "f16"/"fp16"/"float16", "i64"/"int64".
DType parse_dtype(std::string_view name);
bool is_floating(DType dtype);

// Storage types for the 16-bit floats: plain bit patterns, converted explicitly.
struct bf16 {
  uint16_t bits;
};
struct f16 {
  uint16_t bits;
};

inline float bf16_to_float(bf16 v) {
  uint32_t u = static_cast<uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, as PyTorch does; NaN stays NaN (quiet).
inline bf16 float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<uint16_t>((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{static_cast<uint16_t>(u >> 16)};
}

float f16_to_float(f16 v);
f16 float_to_f16(float f);

// Maps a C++ element type to its DType tag.
template <typename T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::F32;
};
template <>
struct dtype_of<bf16> {
  static constexpr DType value = DType::BF16;
};
template <>
struct dtype_of<f16> {
  static constexpr DType value = DType::F16;
};
template <>
struct dtype_of<int64_t> {
  static constexpr DType value = DType::I64;
};

// dispatch_dtype (a runtime dtype as a template parameter) is in core/dispatch.h.

// Scalar conversion through float/int64 for any pair of element types.
template <typename T>
inline double to_double(T v) {
  if constexpr (std::is_same_v<T, bf16>) {
    return bf16_to_float(v);
  } else if constexpr (std::is_same_v<T, f16>) {
    return f16_to_float(v);
  } else {
    return static_cast<double>(v);
  }
}

template <typename T>
inline T from_float(float v) {
  if constexpr (std::is_same_v<T, bf16>) {
    return float_to_bf16(v);
  } else if constexpr (std::is_same_v<T, f16>) {
    return float_to_f16(v);
  } else {
    return static_cast<T>(v);
  }
}

}  // namespace paradiff
