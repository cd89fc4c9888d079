// Linear on the CPU: oneDNN matmul, the weights prepacked once into oneDNN's preferred layout
// and one primitive cached per row count.
#include <omp.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "paradiff/core/weight_store.h"
#include "paradiff/kernels/cpu/onednn_context.h"
#include "paradiff/kernels/linear.h"

namespace paradiff::kernels {

using dnnl::memory;

namespace {

// Rows used to ask oneDNN for its preferred weight layout. The layout depends on K, N and the
// dtype, not on M (checked for M = 1 ... 4096 with oneDNN 2.6), so one packing serves all calls.
constexpr int64_t kLayoutQueryRows = 512;

class OneDnnLinear final : public Linear::Impl {
 public:
  OneDnnLinear(const Tensor& weight, const Tensor& bias, DType compute);
  void forward(const Tensor& x, Tensor& out, Activation activation, bool accumulate) const override;

 private:
  const dnnl::matmul& primitive_for(int64_t m, DType out_dtype, Activation activation,
                                    bool accumulate) const;

  int64_t in_ = 0, out_ = 0;
  DType compute_ = DType::F32;
  memory::desc packed_desc_;
  std::shared_ptr<memory> packed_weights_;
  Tensor bias_;  // F32 [1, out]
  // Primitives by (rows, output dtype, activation, accumulate, threads): a model calls each layer
  // with a few distinct row counts, so this stays small.
  mutable std::mutex mutex_;
  mutable std::map<std::tuple<int64_t, DType, Activation, bool, int>, dnnl::matmul> primitives_;
};

OneDnnLinear::OneDnnLinear(const Tensor& weight, const Tensor& bias, DType compute)
    : in_(weight.dim(1)), out_(weight.dim(0)), compute_(compute) {
  if (bias.defined()) bias_ = bias.to(DType::F32).reshape({1, out_});

  auto& engine = onednn_engine();
  const auto dt = onednn_dtype(compute_);
  // PyTorch stores W as [out, in]; oneDNN wants weights as [K=in, N=out]: same bytes, tag "ba".
  Tensor w = weight.as(compute_);
  memory::desc plain({in_, out_}, dt, memory::format_tag::ba);
  memory::desc any({in_, out_}, dt, memory::format_tag::any);
  memory::desc src({kLayoutQueryRows, in_}, dt, memory::format_tag::ab);
  memory::desc dst({kLayoutQueryRows, out_}, memory::data_type::f32, memory::format_tag::ab);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, any, dst), engine);
  packed_desc_ = pd.weights_desc();

  memory plain_mem(plain, engine, w.raw_data());
  const size_t packed_bytes = packed_desc_.get_size();
  auto pack_into = [&](void* dst) {
    memory packed(packed_desc_, engine, dst);
    dnnl::reorder(plain_mem, packed).execute(onednn_stream(), plain_mem, packed);
    onednn_stream().wait();
  };
  if (WeightStore* store = current_weight_store()) {
    // The store may already hold this packing (filled by another process of the host): the key
    // covers the layout and every source value.
    const int64_t layout[4] = {in_, out_, static_cast<int64_t>(compute_),
                               static_cast<int64_t>(packed_bytes)};
    const uint64_t key =
        weight_digest(w.raw_data(), w.nbytes(), weight_digest(layout, sizeof(layout)));
    std::shared_ptr<const std::byte> storage =
        store->place(packed_bytes, key, [&](std::byte* dst) { pack_into(dst); });
    // oneDNN only reads the weights; its memory object just takes a non-const pointer.
    packed_weights_ = std::shared_ptr<memory>(
        new memory(packed_desc_, engine, const_cast<std::byte*>(storage.get())),
        [storage](memory* m) { delete m; });
    return;
  }
  // The packed copy lives in a Tensor so that it is counted in peak memory.
  auto storage = std::make_shared<Tensor>(
      Tensor::empty({static_cast<int64_t>((packed_bytes + 3) / 4)}, DType::F32));
  pack_into(storage->raw_data());
  packed_weights_ = std::shared_ptr<memory>(new memory(packed_desc_, engine, storage->raw_data()),
                                            [storage](memory* m) { delete m; });
}

const dnnl::matmul& OneDnnLinear::primitive_for(int64_t m, DType out_dtype, Activation activation,
                                                bool accumulate) const {
  const int threads = omp_get_max_threads();
  const auto key = std::make_tuple(m, out_dtype, activation, accumulate, threads);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = primitives_.find(key);
  if (it != primitives_.end()) return it->second;

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
  return primitives_.emplace(key, dnnl::matmul(pd)).first->second;
}

void OneDnnLinear::forward(const Tensor& src, Tensor& out, Activation activation,
                           bool accumulate) const {
  const int64_t m = src.numel() / in_;
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

}  // namespace

template <>
std::shared_ptr<const Linear::Impl> impl::make_linear<DeviceKind::CPU>(const Tensor& weight,
                                                                       const Tensor& bias,
                                                                       DType compute) {
  return std::make_shared<const OneDnnLinear>(weight, bias, compute);
}

}  // namespace paradiff::kernels
