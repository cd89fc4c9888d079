#include "paradiff/kernels/conv2d.h"

#include <omp.h>

#include <algorithm>
#include <unordered_map>

#include "paradiff/kernels/onednn_context.h"

namespace paradiff::kernels {

using dnnl::memory;

namespace {
// The spatial size used to ask oneDNN for its preferred weight layout at construction; other
// shapes reuse that packing unless oneDNN asks for another (then it is repacked once).
constexpr int64_t kLayoutQuerySize = 64;

memory::desc activation_desc(int64_t n, int64_t c, int64_t h, int64_t w) {
  return memory::desc({n, c, h, w}, memory::data_type::f32, memory::format_tag::nhwc);
}
}  // namespace

Conv2d::Conv2d(const Tensor& weight, const Tensor& bias, int64_t stride, Padding2d padding)
    : stride_(stride), pad_(padding) {
  PARADIFF_CHECK(weight.ndim() == 4, "conv2d weight must be [out, in, kh, kw], got ",
                 weight.describe());
  PARADIFF_CHECK(is_floating(weight.dtype()), "conv2d weight must be floating point, got ",
                 weight.describe());
  out_ = weight.dim(0);
  in_ = weight.dim(1);
  kh_ = weight.dim(2);
  kw_ = weight.dim(3);
  PARADIFF_CHECK(out_ > 0 && in_ > 0 && kh_ > 0 && kw_ > 0,
                 "conv2d weight has an empty dim: ", weight.describe());
  PARADIFF_CHECK(stride >= 1, "conv2d stride must be >= 1, got ", stride);
  PARADIFF_CHECK(pad_.top >= 0 && pad_.bottom >= 0 && pad_.left >= 0 && pad_.right >= 0,
                 "conv2d padding must be >= 0");
  if (bias.defined()) {
    bias.expect_shape(Shape{out_}, "conv2d bias");
    bias_ = bias.to(DType::F32);
  }

  auto& engine = onednn_engine();
  const Tensor w = weight.dtype() == DType::F32 ? weight : weight.to(DType::F32);
  // PyTorch's [out, in, kh, kw] is oneDNN's "oihw".
  const memory::desc plain({out_, in_, kh_, kw_}, memory::data_type::f32, memory::format_tag::oihw);
  const int64_t qh = std::max(kLayoutQuerySize, kh_), qw = std::max(kLayoutQuerySize, kw_);
  packed_desc_ = make_pd(1, qh, qw, false).weights_desc();
  memory plain_mem(plain, engine, const_cast<void*>(w.raw_data()));
  // The packed copy lives in a Tensor so that peak-memory accounting sees it.
  auto storage = std::make_shared<Tensor>(
      Tensor::empty({static_cast<int64_t>((packed_desc_.get_size() + 3) / 4)}, DType::F32));
  packed_weights_ = std::shared_ptr<memory>(new memory(packed_desc_, engine, storage->raw_data()),
                                            [storage](memory* m) { delete m; });
  dnnl::reorder(plain_mem, *packed_weights_).execute(onednn_stream(), plain_mem, *packed_weights_);
  onednn_stream().wait();
}

int64_t Conv2d::out_height(int64_t h) const {
  const int64_t span = h + pad_.top + pad_.bottom - kh_;
  PARADIFF_CHECK(span >= 0, "conv2d: input height ", h, " is smaller than the kernel (", kh_,
                 ") with padding ", pad_.top, "+", pad_.bottom);
  return span / stride_ + 1;
}

int64_t Conv2d::out_width(int64_t w) const {
  const int64_t span = w + pad_.left + pad_.right - kw_;
  PARADIFF_CHECK(span >= 0, "conv2d: input width ", w, " is smaller than the kernel (", kw_,
                 ") with padding ", pad_.left, "+", pad_.right);
  return span / stride_ + 1;
}

dnnl::convolution_forward::primitive_desc Conv2d::make_pd(int64_t n, int64_t h, int64_t w,
                                                          bool accumulate) const {
  auto& engine = onednn_engine();
  const memory::desc src = activation_desc(n, in_, h, w);
  const memory::desc dst = activation_desc(n, out_, out_height(h), out_width(w));
  const memory::desc weights({out_, in_, kh_, kw_}, memory::data_type::f32,
                             memory::format_tag::any);
  const memory::dims strides{stride_, stride_}, pad_l{pad_.top, pad_.left},
      pad_r{pad_.bottom, pad_.right};
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  const auto prop = dnnl::prop_kind::forward_inference;
  const auto algo = dnnl::algorithm::convolution_direct;
  if (bias_.defined()) {
    const memory::desc bias({out_}, memory::data_type::f32, memory::format_tag::x);
    return {{prop, algo, src, weights, bias, dst, strides, pad_l, pad_r}, attr, engine};
  }
  return {{prop, algo, src, weights, dst, strides, pad_l, pad_r}, attr, engine};
}

const Conv2d::Prepared& Conv2d::prepared_for(int64_t n, int64_t h, int64_t w,
                                             bool accumulate) const {
  const int threads = omp_get_max_threads();
  const auto key = std::make_tuple(n, h, w, accumulate, threads);
  std::lock_guard<std::mutex> lock(cache_->mutex);
  auto it = cache_->entries.find(key);
  if (it != cache_->entries.end()) return it->second;

  const auto pd = make_pd(n, h, w, accumulate);
  std::shared_ptr<memory> weights = packed_weights_;
  if (pd.weights_desc() != packed_desc_) {
    weights = nullptr;
    for (const auto& m : cache_->repacked)
      if (m->get_desc() == pd.weights_desc()) weights = m;
  }
  if (weights == nullptr) {
    // Another layout for this shape: repack from the packed copy once.
    auto storage = std::make_shared<Tensor>(
        Tensor::empty({static_cast<int64_t>((pd.weights_desc().get_size() + 3) / 4)}, DType::F32));
    weights =
        std::shared_ptr<memory>(new memory(pd.weights_desc(), onednn_engine(), storage->raw_data()),
                                [storage](memory* m) { delete m; });
    dnnl::reorder(*packed_weights_, *weights).execute(onednn_stream(), *packed_weights_, *weights);
    onednn_stream().wait();
    cache_->repacked.push_back(weights);
  }
  return cache_->entries.emplace(key, Prepared{dnnl::convolution_forward(pd), weights})
      .first->second;
}

void Conv2d::forward(const Tensor& x, Tensor& out, bool accumulate) const {
  PARADIFF_CHECK(defined(), "conv2d used before its weights were set");
  PARADIFF_CHECK(x.ndim() == 4 && x.dim(3) == in_, "conv2d input must be (N, H, W, ", in_,
                 ") channels-last, got ", x.describe());
  x.expect_dtype(DType::F32, "conv2d input");
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2);
  const int64_t ho = out_height(h), wo = out_width(w);
  out.expect_shape(Shape{n, ho, wo, out_}, "conv2d output");
  out.expect_dtype(DType::F32, "conv2d output");
  if (n == 0) return;

  const Prepared& prep = prepared_for(n, h, w, accumulate);
  auto& engine = onednn_engine();
  memory src_mem(activation_desc(n, in_, h, w), engine, const_cast<void*>(x.raw_data()));
  memory dst_mem(activation_desc(n, out_, ho, wo), engine, out.raw_data());
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, *prep.weights}, {DNNL_ARG_DST, dst_mem}};
  if (bias_.defined()) {
    args.emplace(DNNL_ARG_BIAS, memory({{out_}, memory::data_type::f32, memory::format_tag::x},
                                       engine, const_cast<void*>(bias_.raw_data())));
  }
  prep.primitive.execute(onednn_stream(), args);
  onednn_stream().wait();
}

Tensor Conv2d::forward(const Tensor& x) const {
  PARADIFF_CHECK(x.ndim() == 4, "conv2d input must be (N, H, W, C), got ", x.describe());
  Tensor out =
      Tensor::empty({x.dim(0), out_height(x.dim(1)), out_width(x.dim(2)), out_}, DType::F32);
  forward(x, out);
  return out;
}

}  // namespace paradiff::kernels
