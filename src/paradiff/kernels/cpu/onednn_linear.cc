// Linear on the CPU: oneDNN matmul, the weights prepacked once into oneDNN's preferred layout
// and one primitive cached per row count. In GemmMode::Bf16StoredF32 the packing is the fp32 one,
// stored in bf16 (cpu/bf16_stored_weights.h) and widened into a per-thread buffer for each call;
// the GEMM is oneDNN's fp32 one. GemmMode::Fp8StoredF32 is the same with float8 e4m3 storage
// (cpu/fp8_stored_weights.h), the weights rounded to e4m3 first; GemmMode::Fp8StoredBf16 stores
// e4m3 codes in the bf16 packing and runs oneDNN's bf16 GEMM on them widened to bf16.
#include <omp.h>

#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "paradiff/core/weight_store.h"
#include "paradiff/kernels/cpu/bf16_stored_weights.h"
#include "paradiff/kernels/cpu/fp8_stored_weights.h"
#include "paradiff/kernels/cpu/onednn_context.h"
#include "paradiff/kernels/linear.h"
#include "paradiff/kernels/weight_storage.h"

namespace paradiff::kernels {

using dnnl::memory;

namespace {

// Rows used to ask oneDNN for its preferred weight layout. The layout depends on K, N and the
// dtype, not on M (checked for M = 1 ... 4096 with oneDNN 2.6), so one packing serves all calls.
constexpr int64_t kLayoutQueryRows = 512;

// bf16 GEMMs whose K is at least 4x N (a transformer MLP's down projection: K = 4096, N = 1024)
// are run kRowChunk rows per call. Measured on an Intel Xeon with AMX (family 6 model 167), oneDNN
// 2.6, bf16 on AMX, ONEDNN_VERBOSE times summed per forward, quiet: 4352 x 4096 -> 1024 ran at 650
// GFLOP/s in one call and 770 in 512-row calls (the FLUX mid-size model's 12 such GEMMs: 673 ms
// -> 567 ms per forward at 1 thread); Qwen-Image mid-size (1024 rows): 100 -> 84 ms at 1 thread,
// 45 -> 41 ms at 2. Other shapes, and every fp32 one, ran the same either way: not cut.
constexpr int64_t kRowChunk = 512;

class OneDnnLinear final : public Linear::Impl {
 public:
  OneDnnLinear(const Tensor& weight, const Tensor& bias, GemmMode mode);
  void forward(const Tensor& x, Tensor& out, Activation activation, bool accumulate) const override;
  size_t weight_bytes() const override {
    return fp8()       ? fp8_weights_.bytes()
           : widened() ? bf16_weights_.bytes()
                       : packed_desc_.get_size();
  }

 private:
  // Widened layers with few rows: straight from the bf16 storage (no widening, no oneDNN).
  void forward_rows(const Tensor& src, Tensor& out, Activation activation, bool accumulate) const;
  const dnnl::matmul& primitive_for(int64_t m, DType out_dtype, Activation activation,
                                    bool accumulate) const;
  // Rows per oneDNN call for an m-row input (m itself unless the call is cut, see kRowChunk).
  int64_t gemm_row_chunk(int64_t m) const;

  int64_t in_ = 0, out_ = 0;
  GemmMode mode_ = GemmMode::F32;
  // What mode_ says about the weights: fp32 GEMMs on weights stored narrower (widened());
  // e4m3 storage (fp8()); any storage narrower than the packing (narrow()).
  bool widened() const {
    return mode_ == GemmMode::Bf16StoredF32 || mode_ == GemmMode::Fp8StoredF32;
  }
  bool fp8() const { return mode_ == GemmMode::Fp8StoredF32 || mode_ == GemmMode::Fp8StoredBf16; }
  bool narrow() const { return widened() || fp8(); }
  DType operand_ = DType::F32;  // dtype of the GEMM's activations and weights
  memory::desc packed_desc_;
  std::shared_ptr<memory> packed_weights_;  // unless narrow()
  cpu::Bf16StoredWeights bf16_weights_;     // if widened() and not fp8()
  cpu::Fp8StoredWeights fp8_weights_;       // if fp8()
  Tensor bias_;                             // F32 [1, out]
  // Primitives by (rows, output dtype, activation, accumulate, threads): a model calls each layer
  // with a few distinct row counts, so this stays small.
  mutable std::mutex mutex_;
  mutable std::map<std::tuple<int64_t, DType, Activation, bool, int>, dnnl::matmul> primitives_;
};

OneDnnLinear::OneDnnLinear(const Tensor& weight, const Tensor& bias, GemmMode mode)
    : in_(weight.dim(1)), out_(weight.dim(0)), mode_(mode), operand_(gemm_operand_dtype(mode)) {
  if (bias.defined()) bias_ = bias.to(DType::F32).reshape({1, out_});

  auto& engine = onednn_engine();
  const auto dt = onednn_dtype(operand_);
  // PyTorch stores W as [out, in]; oneDNN wants weights as [K=in, N=out]: same bytes, tag "ba".
  // Widened weights are rounded to bf16 first: every packed value is then exact in bf16.
  // fp8: rounded to e4m3 from the weight's own values (bf16 ones as they are, others in fp32) as
  // PyTorch converts to float8_e4m3fn, then exact in the operand dtype.
  Tensor w = fp8()
                 ? round_to_storage(weight.dtype() == DType::BF16 ? weight : weight.as(DType::F32),
                                    WeightStorage::Fp8E4M3)
                       .as(operand_)
             : widened() ? round_to_storage(weight.as(DType::F32), WeightStorage::Bf16)
                         : weight.as(operand_);
  memory::desc plain({in_, out_}, dt, memory::format_tag::ba);
  memory::desc any({in_, out_}, dt, memory::format_tag::any);
  memory::desc src({kLayoutQueryRows, in_}, dt, memory::format_tag::ab);
  memory::desc dst({kLayoutQueryRows, out_}, memory::data_type::f32, memory::format_tag::ab);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, any, dst), engine);
  packed_desc_ = pd.weights_desc();

  memory plain_mem(plain, engine, w.raw_data());
  const size_t packed_bytes = fp8()       ? cpu::Fp8StoredWeights::storage_bytes(packed_desc_)
                              : widened() ? cpu::Bf16StoredWeights::storage_bytes(packed_desc_)
                                          : packed_desc_.get_size();
  auto pack_into = [&](void* dst) {
    memory packed(packed_desc_, engine, dst);
    dnnl::reorder(plain_mem, packed).execute(onednn_stream(), plain_mem, packed);
    onednn_stream().wait();
  };
  // Narrow: packed in the operand dtype into a temporary, then stored narrowed (exact).
  auto pack_narrow_into = [&](std::byte* dst) {
    Tensor tmp =
        Tensor::empty({static_cast<int64_t>((packed_desc_.get_size() + 3) / 4)}, DType::F32);
    pack_into(tmp.raw_data());
    const memory packed(packed_desc_, engine, tmp.raw_data());
    if (fp8())
      cpu::Fp8StoredWeights::narrow_into(packed, dst);
    else
      cpu::Bf16StoredWeights::narrow_into(packed, dst);
  };
  if (WeightStore* store = current_weight_store()) {
    // The store may already hold this packing (filled by another process of the host): the key
    // covers the layout, the storage mode and every source value.
    const int64_t layout[5] = {in_, out_, static_cast<int64_t>(operand_),
                               static_cast<int64_t>(packed_bytes), static_cast<int64_t>(mode_)};
    const uint64_t key =
        weight_digest(w.raw_data(), w.nbytes(), weight_digest(layout, sizeof(layout)));
    std::shared_ptr<const std::byte> storage = store->place(packed_bytes, key, [&](std::byte* dst) {
      if (narrow()) {
        pack_narrow_into(dst);
      } else {
        pack_into(dst);
      }
    });
    if (fp8()) {
      fp8_weights_ = cpu::Fp8StoredWeights(packed_desc_, std::move(storage));
      return;
    }
    if (widened()) {
      bf16_weights_ = cpu::Bf16StoredWeights(packed_desc_, std::move(storage));
      return;
    }
    // oneDNN only reads the weights; its memory object just takes a non-const pointer.
    packed_weights_ = std::shared_ptr<memory>(
        new memory(packed_desc_, engine, const_cast<std::byte*>(storage.get())),
        [storage](memory* m) { delete m; });
    return;
  }
  if (narrow()) {
    // Tensor memory (counted in peak bytes), in whole bf16 elements.
    auto storage = std::make_shared<Tensor>(
        Tensor::empty({static_cast<int64_t>((packed_bytes + 1) / 2)}, DType::BF16));
    pack_narrow_into(static_cast<std::byte*>(storage->raw_data()));
    std::shared_ptr<const std::byte> bytes(storage,
                                           static_cast<const std::byte*>(storage->raw_data()));
    if (fp8())
      fp8_weights_ = cpu::Fp8StoredWeights(packed_desc_, std::move(bytes));
    else
      bf16_weights_ = cpu::Bf16StoredWeights(packed_desc_, std::move(bytes));
    return;
  }
  // The packed copy lives in a Tensor so that it is counted in peak memory.
  auto storage = std::make_shared<Tensor>(
      Tensor::empty({static_cast<int64_t>((packed_bytes + 3) / 4)}, DType::F32));
  pack_into(storage->raw_data());
  packed_weights_ = std::shared_ptr<memory>(new memory(packed_desc_, engine, storage->raw_data()),
                                            [storage](memory* m) { delete m; });
}

void OneDnnLinear::forward_rows(const Tensor& src, Tensor& out, Activation activation,
                                bool accumulate) const {
  const int64_t m = src.numel() / in_;
  Tensor y = Tensor::empty({m, out_}, DType::F32);
  bf16_weights_.multiply_rows(src.data<float>(), m, y.data<float>());
  // The epilogue oneDNN would fuse: bias, the sum into out, the activation, the output dtype.
  const float* yv = y.data<float>();
  const float* bias = bias_.defined() ? bias_.data<float>() : nullptr;
  const bool bf16_out = out.dtype() == DType::BF16;
  auto* out_f32 = bf16_out ? nullptr : static_cast<float*>(out.raw_data());
  auto* out_bf16 = bf16_out ? static_cast<bf16*>(out.raw_data()) : nullptr;
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t o = 0; o < out_; ++o) {
      const int64_t i = r * out_ + o;
      float v = yv[i] + (bias ? bias[o] : 0.0f);
      if (accumulate) v += bf16_out ? bf16_to_float(out_bf16[i]) : out_f32[i];
      if (activation == Activation::GeluTanh) {
        constexpr float kSqrt2OverPi = 0.7978845608028654f;
        v = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
      } else if (activation == Activation::Silu) {
        v = v / (1.0f + std::exp(-v));
      }
      if (bf16_out) {
        out_bf16[i] = float_to_bf16(v);
      } else {
        out_f32[i] = v;
      }
    }
  }
}

const dnnl::matmul& OneDnnLinear::primitive_for(int64_t m, DType out_dtype, Activation activation,
                                                bool accumulate) const {
  const int threads = omp_get_max_threads();
  const auto key = std::make_tuple(m, out_dtype, activation, accumulate, threads);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = primitives_.find(key);
  if (it != primitives_.end()) return it->second;

  auto& engine = onednn_engine();
  memory::desc src({m, in_}, onednn_dtype(operand_), memory::format_tag::ab);
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

int64_t OneDnnLinear::gemm_row_chunk(int64_t m) const {
  return operand_ == DType::BF16 && in_ >= 4 * out_ && m > kRowChunk ? kRowChunk : m;
}

void OneDnnLinear::forward(const Tensor& x, Tensor& out, Activation activation,
                           bool accumulate) const {
  const int64_t m = x.numel() / in_;
  Tensor src = x;
  if (widened() && x.dtype() == DType::BF16) {  // widened with the level's own loop
    src = Tensor::empty(x.shape(), DType::F32);
    cpu::widen_bf16(x.data<bf16>(), src.data<float>(), x.numel());
  }
  // Few rows: straight from the bf16 storage (cpu::Bf16StoredWeights::direct_rows()).
  if (mode_ == GemmMode::Bf16StoredF32 && m <= cpu::Bf16StoredWeights::direct_rows() &&
      bf16_weights_.rows_readable()) {
    forward_rows(src, out, activation, accumulate);
    return;
  }
  // oneDNN 2.6's fp32 matmul writes f32 only (below AVX-512 at all, and with a sum post-op
  // anywhere): a bf16 output of an fp32 GEMM goes through an f32 buffer (the activation and sum
  // applied in f32, then rounded once).
  if (operand_ == DType::F32 && out.dtype() != DType::F32) {
    Tensor wide = accumulate ? out.to(DType::F32) : Tensor::empty(out.shape(), DType::F32);
    forward(src, wide, activation, accumulate);
    out.copy_from(wide);
    return;
  }
  auto& engine = onednn_engine();
  const memory& weights = fp8()       ? fp8_weights_.widened()
                          : widened() ? bf16_weights_.widened()
                                      : *packed_weights_;
  const size_t src_row = static_cast<size_t>(in_) * dtype_size(operand_);
  const size_t dst_row = static_cast<size_t>(out_) * dtype_size(out.dtype());
  const memory bias_mem = bias_.defined()
                              ? memory({{1, out_}, memory::data_type::f32, memory::format_tag::ab},
                                       engine, const_cast<void*>(bias_.raw_data()))
                              : memory();
  const int64_t chunk = gemm_row_chunk(m);
  for (int64_t r0 = 0; r0 < m; r0 += chunk) {
    const int64_t n = std::min(chunk, m - r0);
    const dnnl::matmul& mm = primitive_for(n, out.dtype(), activation, accumulate);
    memory src_mem({{n, in_}, onednn_dtype(operand_), memory::format_tag::ab}, engine,
                   const_cast<std::byte*>(static_cast<const std::byte*>(src.raw_data())) +
                       static_cast<size_t>(r0) * src_row);
    memory dst_mem({{n, out_}, onednn_dtype(out.dtype()), memory::format_tag::ab}, engine,
                   static_cast<std::byte*>(out.raw_data()) + static_cast<size_t>(r0) * dst_row);
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst_mem}};
    if (bias_.defined()) args.emplace(DNNL_ARG_BIAS, bias_mem);
    mm.execute(onednn_stream(), args);
  }
  onednn_stream().wait();
}

}  // namespace

template <>
std::shared_ptr<const Linear::Impl> impl::make_linear<DeviceKind::CPU>(const Tensor& weight,
                                                                       const Tensor& bias,
                                                                       GemmMode mode) {
  return std::make_shared<const OneDnnLinear>(weight, bias, mode);
}

}  // namespace paradiff::kernels
