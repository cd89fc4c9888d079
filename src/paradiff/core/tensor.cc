#include "paradiff/core/tensor.h"

#include <cstring>

#include "paradiff/core/memory.h"

#if defined(__AVX512F__) && defined(__AVX512BF16__)
#include <immintrin.h>
#endif

namespace paradiff {

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  Tensor t;
  const size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  auto storage = allocate_bytes(bytes);
  t.data_ = storage.get();
  t.owner_ = std::move(storage);
  t.shape_ = shape;
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::from_external(void* data, const Shape& shape, DType dtype,
                             std::shared_ptr<const void> owner) {
  Tensor t;
  t.data_ = data;
  t.owner_ = std::move(owner);
  t.shape_ = shape;
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::slice(int64_t start, int64_t length) const {
  PARADIFF_CHECK(ndim() >= 1, "cannot slice a 0-dim tensor");
  PARADIFF_CHECK(start >= 0 && length >= 0 && start + length <= shape_[0], "slice [", start, ", ",
                 start + length, ") out of range for dim 0 of ", describe());
  Tensor t = *this;
  const int64_t row = shape_.numel() / (shape_[0] == 0 ? 1 : shape_[0]);
  t.data_ = static_cast<std::byte*>(data_) + start * row * static_cast<int64_t>(dtype_size(dtype_));
  t.shape_[0] = length;
  return t;
}

Tensor Tensor::select(int64_t index) const {
  PARADIFF_CHECK(ndim() >= 1, "cannot select from a 0-dim tensor");
  PARADIFF_CHECK(index >= 0 && index < shape_[0], "index ", index, " out of range for dim 0 of ",
                 describe());
  std::vector<int64_t> dims = shape_.to_vector();
  dims.erase(dims.begin());
  return slice(index, 1).reshape(Shape(dims));
}

Tensor Tensor::reshape(std::initializer_list<int64_t> dims) const {
  std::vector<int64_t> d(dims);
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < d.size(); ++i) {
    if (d[i] == -1) {
      PARADIFF_CHECK(infer < 0, "reshape of ", describe(), ": only one dim may be -1");
      infer = static_cast<int>(i);
    } else {
      known *= d[i];
    }
  }
  if (infer >= 0) {
    PARADIFF_CHECK(known > 0 && numel() % known == 0, "cannot reshape ", describe(),
                   " with a -1 dim");
    d[infer] = numel() / known;
  }
  return reshape(Shape(d));
}

Tensor Tensor::reshape(const Shape& shape) const {
  PARADIFF_CHECK(shape.numel() == numel(), "cannot reshape ", describe(), " to ", shape.to_string(),
                 ": element counts differ");
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::to(DType dtype) const {
  Tensor t = empty(shape_, dtype);
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  PARADIFF_CHECK(src.shape() == shape_, "copy from ", src.describe(), " into ", describe(),
                 ": shapes differ");
  if (src.dtype() == dtype_) {
    std::memcpy(data_, src.raw_data(), nbytes());
    return;
  }
  PARADIFF_CHECK(is_floating(src.dtype()) && is_floating(dtype_), "cannot convert ", src.describe(),
                 " to ", dtype_name(dtype_));
  convert_elements(src.raw_data(), src.dtype(), data_, dtype_, numel());
}

void Tensor::expect_shape(const Shape& shape, const std::string& what) const {
  PARADIFF_CHECK(shape_ == shape, what, ": expected shape ", shape.to_string(), ", got ",
                 shape_.to_string());
}

void Tensor::expect_dtype(DType dtype, const std::string& what) const {
  PARADIFF_CHECK(dtype_ == dtype, what, ": expected dtype ", dtype_name(dtype), ", got ",
                 dtype_name(dtype_));
}

std::string Tensor::describe() const {
  return str_cat(dtype_name(dtype_), shape_.to_string());
}

void Tensor::check_dtype(DType want) const {
  PARADIFF_CHECK(want == dtype_, "tensor ", describe(), " accessed as ", dtype_name(want));
}

Tensor copy_columns(const Tensor& matrix, int64_t start, int64_t count) {
  PARADIFF_CHECK(matrix.ndim() == 2, "copy_columns needs a 2-D tensor, got ", matrix.describe());
  PARADIFF_CHECK(start >= 0 && count >= 0 && start + count <= matrix.dim(1), "columns [", start,
                 ", ", start + count, ") out of range for ", matrix.describe());
  const int64_t rows = matrix.dim(0), cols = matrix.dim(1);
  const size_t elem = dtype_size(matrix.dtype());
  Tensor out = Tensor::empty({rows, count}, matrix.dtype());
  const auto* src = static_cast<const std::byte*>(matrix.raw_data());
  auto* dst = static_cast<std::byte*>(out.raw_data());
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * count * elem, src + (r * cols + start) * elem, count * elem);
  return out;
}

namespace {

template <typename S, typename D>
void convert_loop(const S* src, D* dst, int64_t count) {
#pragma omp parallel for schedule(static) if (count > (1 << 16))
  for (int64_t i = 0; i < count; ++i) {
    float v;
    if constexpr (std::is_same_v<S, float>) {
      v = src[i];
    } else {
      v = static_cast<float>(to_double(src[i]));
    }
    dst[i] = from_float<D>(v);
  }
}

void f32_to_bf16(const float* src, bf16* dst, int64_t count) {
#if defined(__AVX512F__) && defined(__AVX512BF16__)
  const int64_t vec = count / 32 * 32;
#pragma omp parallel for schedule(static) if (count > (1 << 16))
  for (int64_t i = 0; i < vec; i += 32) {
    __m512bh packed = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
    _mm512_storeu_si512(dst + i, reinterpret_cast<__m512i&>(packed));
  }
  for (int64_t i = vec; i < count; ++i) dst[i] = float_to_bf16(src[i]);
#else
  convert_loop(src, dst, count);
#endif
}

}  // namespace

void convert_elements(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t count) {
  PARADIFF_CHECK(is_floating(src_dtype) && is_floating(dst_dtype), "cannot convert ",
                 dtype_name(src_dtype), " to ", dtype_name(dst_dtype));
  if (src_dtype == DType::F32 && dst_dtype == DType::BF16) {
    f32_to_bf16(static_cast<const float*>(src), static_cast<bf16*>(dst), count);
    return;
  }
  dispatch_dtype(src_dtype, [&](auto s) {
    using S = decltype(s);
    dispatch_dtype(dst_dtype, [&](auto d) {
      using D = decltype(d);
      if constexpr (!std::is_same_v<S, int64_t> && !std::is_same_v<D, int64_t>) {
        convert_loop(static_cast<const S*>(src), static_cast<D*>(dst), count);
      }
    });
  });
}

}  // namespace paradiff
