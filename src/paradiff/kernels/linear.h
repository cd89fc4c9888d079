// linear(x, W, b) with PyTorch's convention (W is [out, in]): y = x W^T + b, through oneDNN
// matmul with the weights prepacked once, at construction, into oneDNN's preferred layout.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include <dnnl.hpp>

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// Elementwise function fused into the GEMM's output (a oneDNN post-op: no extra memory pass).
enum class Activation { None, GeluTanh, Silu };

class Linear {
 public:
  Linear() = default;
  // weight: [out, in] in any floating dtype; bias: [out] or an undefined Tensor for none.
  // compute: F32 (fp32 GEMM) or BF16 (bf16 operands, fp32 accumulation); weights are converted
  // to it once here.
  Linear(const Tensor& weight, const Tensor& bias, DType compute);

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  DType compute_dtype() const { return compute_; }
  bool has_bias() const { return bias_.defined(); }
  bool defined() const { return in_ > 0; }

  // x: (..., in) in F32 or BF16 (converted to the compute dtype if it differs);
  // out: preallocated (..., out) in F32 or BF16. out must not alias x. With `accumulate`,
  // out = act(out + x W^T + b): the sum comes before the activation (oneDNN's post-op order).
  void forward(const Tensor& x, Tensor& out, Activation activation = Activation::None,
               bool accumulate = false) const;
  Tensor forward(const Tensor& x, DType out_dtype = DType::F32,
                 Activation activation = Activation::None) const;

 private:
  const dnnl::matmul& primitive_for(int64_t m, DType out_dtype, Activation activation,
                                    bool accumulate) const;

  int64_t in_ = 0, out_ = 0;
  DType compute_ = DType::F32;
  dnnl::memory::desc packed_desc_;
  std::shared_ptr<dnnl::memory> packed_weights_;
  Tensor bias_;  // F32 [1, out]
  // Primitives by (rows, output dtype, activation, accumulate, threads): a model calls each layer
  // with a few distinct row counts, so this stays small. Shared by copies (they share the weights
  // too).
  struct PrimitiveCache {
    std::mutex mutex;
    std::map<std::tuple<int64_t, DType, Activation, bool, int>, dnnl::matmul> primitives;
  };
  std::shared_ptr<PrimitiveCache> cache_ = std::make_shared<PrimitiveCache>();
};

}  // namespace paradiff::kernels
