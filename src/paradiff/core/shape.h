// Tensor shapes: up to kMaxDims dimensions, each >= 0, element count checked for overflow.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace paradiff {

class Shape {
 public:
  static constexpr int kMaxDims = 6;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims);

  int ndim() const { return ndim_; }
  // Negative indices count from the end, as in PyTorch.
  int64_t operator[](int i) const;
  int64_t& operator[](int i);
  int64_t numel() const;
  std::vector<int64_t> to_vector() const { return {dims_.begin(), dims_.begin() + ndim_}; }
  std::string to_string() const;  // "[2, 77, 64]"

  bool operator==(const Shape& other) const;
  bool operator!=(const Shape& other) const { return !(*this == other); }

 private:
  void validate() const;
  int normalize(int i) const;

  std::array<int64_t, kMaxDims> dims_{};
  int ndim_ = 0;
};

// Product of dims with overflow checks; throws naming the shape when it overflows int64.
int64_t checked_numel(const std::vector<int64_t>& dims);

}  // namespace paradiff
