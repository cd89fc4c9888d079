#include "paradiff/core/tensor.h"

#include <cstring>

#include "paradiff/core/allocator.h"

#if defined(__AVX512F__) && defined(__AVX512BF16__)
#include <immintrin.h>
#endif

namespace paradiff {

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  const size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  auto storage = allocator(device).allocate(bytes);
  t.data_ = storage.get();
  t.owner_ = std::move(storage);
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.check_cpu("zeros");
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::from_external(void* data, const Shape& shape, DType dtype,
                             std::shared_ptr<const void> owner, Device device) {
  Tensor t;
  t.data_ = data;
  t.owner_ = std::move(owner);
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
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

Tensor Tensor::narrow(int dim, int64_t start, int64_t length) const {
  PARADIFF_CHECK(dim >= -ndim() && dim < ndim(), "narrow: dim ", dim, " out of range for ",
                 describe());
  if (dim < 0) dim += ndim();
  PARADIFF_CHECK(start >= 0 && length >= 0 && start + length <= shape_[dim], "narrow: range [",
                 start, ", ", start + length, ") out of range for dim ", dim, " of ", describe());
  int64_t outer = 1;
  for (int i = 0; i < dim; ++i) outer *= shape_[i];
  int64_t inner = 1;
  for (int i = dim + 1; i < ndim(); ++i) inner *= shape_[i];
  Shape shape = shape_;
  shape[dim] = length;
  if (outer == 1) {
    Tensor t = *this;
    t.data_ =
        static_cast<std::byte*>(data_) + start * inner * static_cast<int64_t>(dtype_size(dtype_));
    t.shape_ = shape;
    return t;
  }
  check_cpu("narrow (a copy here)");
  Tensor out = empty(shape, dtype_);
  const size_t row = static_cast<size_t>(length * inner) * dtype_size(dtype_);
  const auto* src = static_cast<const std::byte*>(data_);
  auto* dst = static_cast<std::byte*>(out.data_);
  const size_t src_stride = static_cast<size_t>(shape_[dim] * inner) * dtype_size(dtype_);
  const size_t offset = static_cast<size_t>(start * inner) * dtype_size(dtype_);
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(dst + o * row, src + o * src_stride + offset, row);
  return out;
}

Tensor concat(const std::vector<Tensor>& parts, int dim) {
  PARADIFF_CHECK(!parts.empty(), "concat of no tensors");
  const Tensor& first = parts.front();
  PARADIFF_CHECK(dim >= -first.ndim() && dim < first.ndim(), "concat: dim ", dim,
                 " out of range for ", first.describe());
  if (dim < 0) dim += first.ndim();
  Shape shape = first.shape();
  int64_t total = 0;
  for (const Tensor& p : parts) {
    PARADIFF_CHECK(p.device().is_cpu(), "concat: ", p.describe(), " is not on the cpu");
    Shape probe = p.shape();
    PARADIFF_CHECK(p.dtype() == first.dtype() && probe.ndim() == shape.ndim(),
                   "concat: ", p.describe(), " does not match ", first.describe());
    probe[dim] = shape[dim];
    PARADIFF_CHECK(probe == shape, "concat: ", p.describe(), " does not match ", first.describe(),
                   " outside dim ", dim);
    total += p.dim(dim);
  }
  shape[dim] = total;
  Tensor out = Tensor::empty(shape, first.dtype());
  int64_t outer = 1;
  for (int i = 0; i < dim; ++i) outer *= shape[i];
  const size_t elem = dtype_size(first.dtype());
  const size_t out_row = static_cast<size_t>(out.numel() / (outer == 0 ? 1 : outer)) * elem;
  size_t offset = 0;
  for (const Tensor& p : parts) {
    const size_t row = static_cast<size_t>(p.numel() / (outer == 0 ? 1 : outer)) * elem;
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(static_cast<std::byte*>(out.raw_data()) + o * out_row + offset,
                  static_cast<const std::byte*>(p.raw_data()) + o * row, row);
    offset += row;
  }
  return out;
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
  check_cpu("to");
  Tensor t = empty(shape_, dtype);
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  PARADIFF_CHECK(src.shape() == shape_, "copy from ", src.describe(), " into ", describe(),
                 ": shapes differ");
  check_cpu("copy_from");
  src.check_cpu("copy_from");
  if (src.dtype() == dtype_) {
    std::memcpy(data_, src.raw_data(), nbytes());
    return;
  }
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
  if (device_.is_cpu()) return str_cat(dtype_name(dtype_), shape_.to_string());
  return str_cat(dtype_name(dtype_), shape_.to_string(), " on ", device_name(device_));
}

void Tensor::check_dtype(DType want) const {
  PARADIFF_CHECK(want == dtype_, "tensor ", describe(), " accessed as ", dtype_name(want));
}

void Tensor::check_cpu(const char* what) const {
  PARADIFF_CHECK(device_.is_cpu(), what, ": ", describe(),
                 " is not on the cpu (no other device has a backend in this build)");
}

Tensor copy_columns(const Tensor& matrix, int64_t start, int64_t count) {
  PARADIFF_CHECK(matrix.ndim() == 2, "copy_columns needs a 2-D tensor, got ", matrix.describe());
  PARADIFF_CHECK(start >= 0 && count >= 0 && start + count <= matrix.dim(1), "columns [", start,
                 ", ", start + count, ") out of range for ", matrix.describe());
  PARADIFF_CHECK(matrix.device().is_cpu(), "copy_columns: ", matrix.describe(),
                 " is not on the cpu");
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
  if (src_dtype == DType::I64 && dst_dtype == DType::F32) {
    // Integer tensors (masks, ids) to F32, as torch's .to(torch.float32): nearest float.
    const auto* in = static_cast<const int64_t*>(src);
    auto* out = static_cast<float*>(dst);
    for (int64_t i = 0; i < count; ++i) out[i] = static_cast<float>(in[i]);
    return;
  }
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
