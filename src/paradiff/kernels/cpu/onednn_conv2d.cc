// Conv2d on the CPU: oneDNN's convolution primitive on NHWC activations, the weights prepacked
// once into oneDNN's preferred layout and one primitive cached per input shape. GemmMode::Bf16
// packs bf16 weights and rounds the input to bf16 per call; GemmMode::Bf16StoredF32 stores the
// fp32 packing in bf16 and widens it per call (cpu/bf16_stored_weights.h).
#include <omp.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "paradiff/kernels/conv2d.h"
#include "paradiff/kernels/cpu/bf16_stored_weights.h"
#include "paradiff/kernels/cpu/onednn_context.h"

namespace paradiff::kernels {

using dnnl::memory;

namespace {

// The spatial size used to ask oneDNN for its preferred weight layout at construction; other
// shapes reuse that packing unless oneDNN asks for another (then it is repacked once).
constexpr int64_t kLayoutQuerySize = 64;

memory::desc activation_desc(int64_t n, int64_t c, int64_t h, int64_t w,
                             memory::data_type dt = memory::data_type::f32) {
  return memory::desc({n, c, h, w}, dt, memory::format_tag::nhwc);
}

// Packed weights in one layout: oneDNN memory, or (widened modes) bf16 storage of the fp32 one.
struct PackedWeights {
  std::shared_ptr<memory> direct;
  cpu::Bf16StoredWeights bf16;
  memory::desc desc() const { return direct ? direct->get_desc() : bf16.f32_desc(); }
  size_t bytes() const { return direct ? direct->get_desc().get_size() : bf16.bytes(); }
  // The memory the primitive reads (widened into this thread's scratch if stored in bf16).
  memory get() const { return direct ? *direct : bf16.widened(); }
};

// Reorders `from` into `desc` once, into storage counted in peak memory (stored in bf16 when
// `widened`).
PackedWeights pack(memory from, const memory::desc& desc, bool widened) {
  auto storage = std::make_shared<Tensor>(
      Tensor::empty({static_cast<int64_t>((desc.get_size() + 3) / 4)}, DType::F32));
  auto packed = std::shared_ptr<memory>(new memory(desc, onednn_engine(), storage->raw_data()),
                                        [storage](memory* m) { delete m; });
  dnnl::reorder(from, *packed).execute(onednn_stream(), from, *packed);
  onednn_stream().wait();
  if (!widened) return PackedWeights{packed, {}};
  return PackedWeights{nullptr, cpu::Bf16StoredWeights::from_packed(*packed)};
}

class OneDnnConv2d final : public Conv2d::Impl {
 public:
  OneDnnConv2d(const Conv2d::Geometry& geometry, const Tensor& weight, const Tensor& bias,
               GemmMode mode);
  void forward(const Tensor& x, Tensor& out, bool accumulate) const override;
  size_t weight_bytes() const override { return packed_.bytes(); }

 private:
  struct Prepared {
    dnnl::convolution_forward primitive;
    PackedWeights weights;  // packed for this primitive
  };
  const Prepared& prepared_for(int64_t n, int64_t h, int64_t w, bool accumulate) const;
  dnnl::convolution_forward::primitive_desc make_pd(int64_t n, int64_t h, int64_t w,
                                                    bool accumulate) const;

  Conv2d::Geometry g_;
  GemmMode mode_ = GemmMode::F32;
  bool widened_ = false;                                // mode_ == Bf16StoredF32
  memory::data_type operand_ = memory::data_type::f32;  // input and weights in the primitive
  PackedWeights packed_;
  Tensor bias_;  // F32 [out], or undefined
  // Primitives by (N, H, W, accumulate, threads). If oneDNN wants another weight layout for
  // some shape, the weights are repacked for that layout once (`repacked_`, shared by every
  // primitive that wants it).
  mutable std::mutex mutex_;
  mutable std::map<std::tuple<int64_t, int64_t, int64_t, bool, int>, Prepared> entries_;
  mutable std::vector<PackedWeights> repacked_;
};

OneDnnConv2d::OneDnnConv2d(const Conv2d::Geometry& geometry, const Tensor& weight,
                           const Tensor& bias, GemmMode mode)
    : g_(geometry),
      mode_(mode),
      widened_(mode == GemmMode::Bf16StoredF32),
      operand_(onednn_dtype(gemm_operand_dtype(mode))) {
  if (bias.defined()) bias_ = bias.to(DType::F32);

  auto& engine = onednn_engine();
  // Widened weights are rounded to bf16 first: every packed value is then exact in bf16.
  const Tensor w = mode_ == GemmMode::F32 ? weight.as(DType::F32)
                   : widened_             ? weight.as(DType::BF16).to(DType::F32)
                                          : weight.as(DType::BF16);
  // PyTorch's [out, in, kh, kw] is oneDNN's "oihw".
  const memory::desc plain({g_.out, g_.in, g_.kh, g_.kw}, operand_, memory::format_tag::oihw);
  const int64_t qh = std::max(kLayoutQuerySize, g_.kh), qw = std::max(kLayoutQuerySize, g_.kw);
  memory plain_mem(plain, engine, const_cast<void*>(w.raw_data()));
  packed_ = pack(plain_mem, make_pd(1, qh, qw, false).weights_desc(), widened_);
}

dnnl::convolution_forward::primitive_desc OneDnnConv2d::make_pd(int64_t n, int64_t h, int64_t w,
                                                                bool accumulate) const {
  auto& engine = onednn_engine();
  const memory::desc src = activation_desc(n, g_.in, h, w, operand_);
  const memory::desc dst = activation_desc(n, g_.out, g_.out_height(h), g_.out_width(w));
  const memory::desc weights({g_.out, g_.in, g_.kh, g_.kw}, operand_, memory::format_tag::any);
  const memory::dims strides{g_.stride, g_.stride}, pad_l{g_.pad.top, g_.pad.left},
      pad_r{g_.pad.bottom, g_.pad.right};
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  const auto prop = dnnl::prop_kind::forward_inference;
  const auto algo = dnnl::algorithm::convolution_direct;
  if (bias_.defined()) {
    const memory::desc bias({g_.out}, memory::data_type::f32, memory::format_tag::x);
    return {{prop, algo, src, weights, bias, dst, strides, pad_l, pad_r}, attr, engine};
  }
  return {{prop, algo, src, weights, dst, strides, pad_l, pad_r}, attr, engine};
}

const OneDnnConv2d::Prepared& OneDnnConv2d::prepared_for(int64_t n, int64_t h, int64_t w,
                                                         bool accumulate) const {
  const int threads = omp_get_max_threads();
  const auto key = std::make_tuple(n, h, w, accumulate, threads);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(key);
  if (it != entries_.end()) return it->second;

  const auto pd = make_pd(n, h, w, accumulate);
  const PackedWeights* weights = pd.weights_desc() == packed_.desc() ? &packed_ : nullptr;
  for (const auto& p : repacked_)
    if (weights == nullptr && p.desc() == pd.weights_desc()) weights = &p;
  if (weights == nullptr) {
    // Another layout for this shape: repack from the packed copy once.
    repacked_.push_back(pack(packed_.get(), pd.weights_desc(), widened_));
    weights = &repacked_.back();
  }
  return entries_.emplace(key, Prepared{dnnl::convolution_forward(pd), *weights}).first->second;
}

void OneDnnConv2d::forward(const Tensor& x, Tensor& out, bool accumulate) const {
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2);
  const int64_t ho = out.dim(1), wo = out.dim(2);
  const Prepared& prep = prepared_for(n, h, w, accumulate);
  auto& engine = onednn_engine();
  // Native bf16: the input is rounded to bf16 here (the layer's interface is f32).
  const Tensor src = mode_ == GemmMode::Bf16 ? x.to(DType::BF16) : x;
  memory src_mem(activation_desc(n, g_.in, h, w, operand_), engine,
                 const_cast<void*>(src.raw_data()));
  memory dst_mem(activation_desc(n, g_.out, ho, wo), engine, out.raw_data());
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, prep.weights.get()}, {DNNL_ARG_DST, dst_mem}};
  if (bias_.defined()) {
    args.emplace(DNNL_ARG_BIAS, memory({{g_.out}, memory::data_type::f32, memory::format_tag::x},
                                       engine, const_cast<void*>(bias_.raw_data())));
  }
  prep.primitive.execute(onednn_stream(), args);
  onednn_stream().wait();
}

}  // namespace

template <>
std::shared_ptr<const Conv2d::Impl> impl::make_conv2d<DeviceKind::CPU>(
    const Conv2d::Geometry& geometry, const Tensor& weight, const Tensor& bias, GemmMode mode) {
  return std::make_shared<const OneDnnConv2d>(geometry, weight, bias, mode);
}

}  // namespace paradiff::kernels
