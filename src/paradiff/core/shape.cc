#include "paradiff/core/shape.h"

#include <sstream>

#include "paradiff/core/error.h"

namespace paradiff {

namespace {
std::string dims_to_string(const int64_t* dims, int n) {
  std::ostringstream out;
  out << '[';
  for (int i = 0; i < n; ++i) out << (i ? ", " : "") << dims[i];
  out << ']';
  return out.str();
}
}  // namespace

Shape::Shape(std::initializer_list<int64_t> dims) {
  PARADIFF_CHECK(dims.size() <= kMaxDims, "shape has ", dims.size(), " dims, at most ", kMaxDims,
                 " are supported");
  for (int64_t d : dims) dims_[ndim_++] = d;
  validate();
}

Shape::Shape(const std::vector<int64_t>& dims) {
  PARADIFF_CHECK(dims.size() <= kMaxDims, "shape ", dims_to_string(dims.data(), dims.size()),
                 " has ", dims.size(), " dims, at most ", kMaxDims, " are supported");
  for (int64_t d : dims) dims_[ndim_++] = d;
  validate();
}

void Shape::validate() const {
  for (int i = 0; i < ndim_; ++i)
    PARADIFF_CHECK(dims_[i] >= 0, "shape ", to_string(), " has a negative dimension");
  numel();  // throws on overflow
}

int Shape::normalize(int i) const {
  const int j = i < 0 ? i + ndim_ : i;
  PARADIFF_CHECK(j >= 0 && j < ndim_, "dimension index ", i, " out of range for shape ",
                 to_string());
  return j;
}

int64_t Shape::operator[](int i) const {
  return dims_[normalize(i)];
}
int64_t& Shape::operator[](int i) {
  return dims_[normalize(i)];
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim_; ++i) {
    PARADIFF_CHECK(!__builtin_mul_overflow(n, dims_[i], &n), "shape ", to_string(),
                   " has more elements than fit in 64 bits");
  }
  return n;
}

std::string Shape::to_string() const {
  return dims_to_string(dims_.data(), ndim_);
}

bool Shape::operator==(const Shape& other) const {
  if (ndim_ != other.ndim_) return false;
  for (int i = 0; i < ndim_; ++i)
    if (dims_[i] != other.dims_[i]) return false;
  return true;
}

int64_t checked_numel(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    PARADIFF_CHECK(d >= 0, "shape ", dims_to_string(dims.data(), dims.size()),
                   " has a negative dimension");
    PARADIFF_CHECK(!__builtin_mul_overflow(n, d, &n), "shape ",
                   dims_to_string(dims.data(), dims.size()),
                   " has more elements than fit in 64 bits");
  }
  return n;
}

}  // namespace paradiff
