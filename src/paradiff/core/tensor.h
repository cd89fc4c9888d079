// Tensor: a shape, a dtype, a device and contiguous row-major storage (64-byte aligned when
// allocated here). Copies are cheap and share storage; views (slices along the leading dim,
// select, reshape) share it too. Storage comes either from the device's allocator (accounted in
// its peak bytes; the CPU's is allocate_bytes()) or from an external owner such as a
// memory-mapped file. Every tensor is on the CPU today; the element-wise host operations below
// (to, copy_from, concat, ...) refuse any other device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "paradiff/core/device.h"
#include "paradiff/core/dispatch.h"  // so that every user of tensors can dispatch on their dtype
#include "paradiff/core/dtype.h"
#include "paradiff/core/error.h"
#include "paradiff/core/shape.h"

namespace paradiff {

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() is false

  // Uninitialised storage from the device's allocator.
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu());
  // Wraps memory owned elsewhere, on `device`; `owner` keeps it alive for as long as any view
  // exists.
  static Tensor from_external(void* data, const Shape& shape, DType dtype,
                              std::shared_ptr<const void> owner, Device device = Device::cpu());

  bool defined() const { return data_ != nullptr || shape_.ndim() > 0; }
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  int ndim() const { return shape_.ndim(); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  void* raw_data() { return data_; }
  const void* raw_data() const { return data_; }
  // Typed access; throws if T does not match the dtype.
  template <typename T>
  T* data() {
    check_dtype(dtype_of<T>::value);
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data() const {
    check_dtype(dtype_of<T>::value);
    return static_cast<const T*>(data_);
  }

  // Rows [start, start + length) of dim 0, as a view.
  Tensor slice(int64_t start, int64_t length) const;
  // Entries [start, start + length) of dim `dim`: a view when they are contiguous in memory (dim
  // 0, or every dim before `dim` has size 1), otherwise a fresh copy.
  Tensor narrow(int dim, int64_t start, int64_t length) const;
  // Entry `index` of dim 0 with that dim removed, as a view.
  Tensor select(int64_t index) const;
  // Same elements, new shape (numel must match), as a view. One dim may be -1.
  Tensor reshape(std::initializer_list<int64_t> dims) const;
  Tensor reshape(const Shape& shape) const;

  // A fresh copy in `dtype` (a plain copy when the dtype is the same).
  Tensor to(DType dtype) const;
  // This tensor when it already has `dtype` (no copy, shares storage), else to(dtype).
  Tensor as(DType dtype) const { return dtype == dtype_ ? *this : to(dtype); }
  Tensor clone() const { return to(dtype_); }
  // Copies `src` (same shape, any floating dtype) into this tensor's storage, converting.
  void copy_from(const Tensor& src);

  // Throws a clear error unless the tensor has this shape / dtype; `what` names the tensor.
  void expect_shape(const Shape& shape, const std::string& what) const;
  void expect_dtype(DType dtype, const std::string& what) const;
  std::string describe() const;  // "f32[2, 77, 64]"; "f32[2, 77, 64] on cuda:0" off the CPU

 private:
  void check_dtype(DType want) const;
  // Throws unless the tensor is on the CPU: `what` names the host operation.
  void check_cpu(const char* what) const;

  std::shared_ptr<const void> owner_;
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_ = Device::cpu();
};

// Concatenation along `dim` of tensors equal in every other dim and in dtype.
Tensor concat(const std::vector<Tensor>& parts, int dim);

// Columns [start, start + count) of a 2-D tensor, as a fresh contiguous copy.
Tensor copy_columns(const Tensor& matrix, int64_t start, int64_t count);

// Converts `count` elements between floating dtypes (f32, bf16, f16); vectorised for the pairs
// that matter (f32 <-> bf16).
void convert_elements(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t count);

}  // namespace paradiff
