// Binds a model's parameters from a WeightSource by walking the module tree with checkpoint
// names ("transformer_blocks.3.attn.to_q"), checking every shape against the config and keeping
// a record of what was used, so that a missing, unexpected or wrongly shaped tensor is reported
// by name.
#pragma once

#include <map>
#include <set>
#include <string>

#include "paradiff/kernels/linear.h"
#include "paradiff/models/weight_source.h"

namespace paradiff::models {

// Parameters made up instead of read: uniform in +-1/sqrt(fan_in) for matrices (torch's default
// bound), near 1 for norm weights, small for biases. For benchmarks and parallel tests on models
// of any size without a checkpoint.
struct RandomInit {
  uint64_t seed = 0;
};

class ModuleLoader {
 public:
  // compute: the dtype linear layers compute in (F32 or BF16); their weights are packed in it.
  ModuleLoader(const WeightSource& source, DType compute);
  ModuleLoader(RandomInit init, DType compute);

  DType compute_dtype() const { return compute_; }

  // "<prefix>.weight" [out, in] and, with bias, "<prefix>.bias" [out]. Under a
  // kernels::WeightStorageScope the layer is narrowed as diffusers' layerwise casting would
  // narrow the module `prefix` (kernels/weight_storage.h): weights and bias.
  kernels::Linear linear(const std::string& prefix, int64_t in, int64_t out, bool bias = true);
  // The same for a layer assembled from parts of tensors (weight [out, in], bias [out] or
  // undefined) that belong to the module `prefix`.
  kernels::Linear linear_from(const std::string& prefix, const Tensor& weight, const Tensor& bias);
  // A parameter read as F32 with the expected shape (norm weights and the like).
  Tensor parameter(const std::string& name, const Shape& shape);
  // Any tensor with the expected shape, in dtype `want` (for layers built from parts of one).
  Tensor tensor(const std::string& name, const Shape& shape, DType want) {
    return take(name, shape, want);
  }
  // "<prefix>.<child>": module paths as in the checkpoint.
  static std::string join(const std::string& prefix, const std::string& child);

  // Throws listing (the first few of) the tensors in the source that no module bound.
  void finish() const;

  // Bytes of every parameter bound so far, in the dtype it was bound in (before any packing).
  int64_t bytes_bound() const { return bytes_bound_; }

  // With RandomInit: from now on every tensor made up is also kept in `sink` by name, as bound
  // (before packing), so that a random model can be written out as a checkpoint (paradiff
  // bench's placed runs).
  void record_into(std::map<std::string, Tensor>* sink) { record_ = sink; }

 private:
  Tensor take(const std::string& name, const Shape& shape, DType want);

  Tensor random(const std::string& name, const Shape& shape, DType want) const;

  const WeightSource* source_ = nullptr;  // null: parameters come from random_
  RandomInit random_;
  DType compute_;
  std::set<std::string> used_;
  int64_t bytes_bound_ = 0;
  std::map<std::string, Tensor>* record_ = nullptr;
};

}  // namespace paradiff::models
