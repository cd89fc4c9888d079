#include "paradiff/kernels/linear.h"

#include <omp.h>

#include <unordered_map>
#include <vector>

#include "paradiff/kernels/onednn_context.h"

namespace paradiff::kernels {

using dnnl::memory;

namespace {
// Rows used to ask oneDNN for its preferred weight layout. The layout depends on K, N and the
// dtype, not on M (checked for M = 1 ... 4096 with oneDNN 2.6), so one packing serves all calls.
constexpr int64_t kLayoutQueryRows = 512;
}  // namespace

Linear::Linear(const Tensor& weight, const Tensor& bias, DType compute) : compute_(compute) {
  PARADIFF_CHECK(weight.ndim() == 2, "linear weight must be [out, in], got ", weight.describe());
  PARADIFF_CHECK(compute == DType::F32 || compute == DType::BF16,
                 "linear compute dtype must be f32 or bf16, got ", dtype_name(compute));
  PARADIFF_CHECK(is_floating(weight.dtype()), "linear weight must be floating point, got ",
                 weight.describe());
  out_ = weight.dim(0);
  in_ = weight.dim(1);
  PARADIFF_CHECK(in_ > 0 && out_ > 0, "linear weight has an empty dimension: ", weight.describe());
  if (bias.defined()) {
    bias.expect_shape(Shape{out_}, "linear bias");
    bias_ = bias.to(DType::F32).reshape({1, out_});
  }

  auto& engine = onednn_engine();
  const auto dt = onednn_dtype(compute_);
  // PyTorch stores W as [out, in]; oneDNN wants weights as [K=in, N=out]: same bytes, tag "ba".
  Tensor w = weight.dtype() == compute_ ? weight : weight.to(compute_);
  memory::desc plain({in_, out_}, dt, memory::format_tag::ba);
  memory::desc any({in_, out_}, dt, memory::format_tag::any);
  memory::desc src({kLayoutQueryRows, in_}, dt, memory::format_tag::ab);
  memory::desc dst({kLayoutQueryRows, out_}, memory::data_type::f32, memory::format_tag::ab);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, any, dst), engine);
  packed_desc_ = pd.weights_desc();

  memory plain_mem(plain, engine, w.raw_data());
  // The packed copy lives in a Tensor so that it is counted in peak memory.
  auto storage = std::make_shared<Tensor>(
      Tensor::empty({static_cast<int64_t>((packed_desc_.get_size() + 3) / 4)}, DType::F32));
  packed_weights_ = std::shared_ptr<memory>(new memory(packed_desc_, engine, storage->raw_data()),
                                            [storage](memory* m) { delete m; });
  dnnl::reorder(plain_mem, *packed_weights_).execute(onednn_stream(), plain_mem, *packed_weights_);
  onednn_stream().wait();
}

const dnnl::matmul& Linear::primitive_for(int64_t m, DType out_dtype, Activation activation,
                                          bool accumulate) const {
  const int threads = omp_get_max_threads();
  const auto key = std::make_tuple(m, out_dtype, activation, accumulate, threads);
  std::lock_guard<std::mutex> lock(cache_->mutex);
  auto it = cache_->primitives.find(key);
  if (it != cache_->primitives.end()) return it->second;

  auto& engine = onednn_engine();
  memory::desc src({m, in_}, onednn_dtype(compute_), memory::format_tag::ab);
  memory::desc dst({m, out_}, onednn_dtype(out_dtype), memory::format_tag::ab);
  dnnl::post_ops ops;
  if (accumulate) ops.append_sum(1.0f);
  if (activation == Activation::GeluTanh)
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_tanh, 0.f, 0.f);
  if (activation == Activation::Silu)
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_swish, 1.f, 0.f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  auto desc =
      bias_.defined()
          ? dnnl::matmul::desc(
                src, packed_desc_,
                memory::desc({1, out_}, memory::data_type::f32, memory::format_tag::ab), dst)
          : dnnl::matmul::desc(src, packed_desc_, dst);
  dnnl::matmul::primitive_desc pd(desc, attr, engine);
  return cache_->primitives.emplace(key, dnnl::matmul(pd)).first->second;
}

void Linear::forward(const Tensor& x, Tensor& out, Activation activation, bool accumulate) const {
  PARADIFF_CHECK(defined(), "linear layer used before its weights were set");
  PARADIFF_CHECK(x.ndim() >= 1 && x.dim(-1) == in_, "linear input ", x.describe(),
                 ": last dim must be ", in_);
  PARADIFF_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::BF16,
                 "linear input must be f32 or bf16, got ", x.describe());
  PARADIFF_CHECK(out.dtype() == DType::F32 || out.dtype() == DType::BF16,
                 "linear output must be f32 or bf16, got ", out.describe());
  const int64_t m = x.numel() / in_;
  PARADIFF_CHECK(out.ndim() >= 1 && out.dim(-1) == out_ && out.numel() / out_ == m,
                 "linear output ", out.describe(), " does not fit input ", x.describe(), " with ",
                 out_, " output features");
  if (m == 0) return;

  const Tensor src = x.dtype() == compute_ ? x : x.to(compute_);
  const dnnl::matmul& mm = primitive_for(m, out.dtype(), activation, accumulate);
  auto& engine = onednn_engine();
  memory src_mem({{m, in_}, onednn_dtype(compute_), memory::format_tag::ab}, engine,
                 const_cast<void*>(src.raw_data()));
  memory dst_mem({{m, out_}, onednn_dtype(out.dtype()), memory::format_tag::ab}, engine,
                 out.raw_data());
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, *packed_weights_}, {DNNL_ARG_DST, dst_mem}};
  if (bias_.defined()) {
    args.emplace(DNNL_ARG_BIAS, memory({{1, out_}, memory::data_type::f32, memory::format_tag::ab},
                                       engine, const_cast<void*>(bias_.raw_data())));
  }
  mm.execute(onednn_stream(), args);
  onednn_stream().wait();
}

Tensor Linear::forward(const Tensor& x, DType out_dtype, Activation activation) const {
  PARADIFF_CHECK(x.ndim() >= 1, "linear input must have at least one dim");
  std::vector<int64_t> dims = x.shape().to_vector();
  dims.back() = out_;
  Tensor out = Tensor::empty(Shape(dims), out_dtype);
  forward(x, out, activation);
  return out;
}

}  // namespace paradiff::kernels
