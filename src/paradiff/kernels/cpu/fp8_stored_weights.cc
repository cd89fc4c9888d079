#include "paradiff/kernels/cpu/fp8_stored_weights.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "paradiff/core/error.h"
#include "paradiff/core/tensor.h"
#include "paradiff/kernels/cpu/onednn_context.h"
#include "paradiff/kernels/fp8_e4m3.h"
#include "paradiff/kernels/narrowing.h"

namespace paradiff::kernels::cpu {
namespace {

constexpr int64_t kChunk = int64_t{1} << 16;  // elements per OpenMP work item

// The bf16 bits of each code's value (exact: e4m3 has 3 mantissa bits, bf16 7, and its exponent
// range covers e4m3's subnormals); NaN stays NaN.
const std::array<uint16_t, 256>& bf16_table() {
  static const std::array<uint16_t, 256> table = [] {
    std::array<uint16_t, 256> t{};
    for (int code = 0; code < 256; ++code) {
      uint32_t bits = 0;
      const float v = fp8_e4m3_values()[code];
      std::memcpy(&bits, &v, sizeof(bits));
      t[code] = static_cast<uint16_t>(bits >> 16);
    }
    return t;
  }();
  return table;
}

Tensor& scratch() {
  thread_local Tensor buffer;
  return buffer;
}

size_t element_bytes(const dnnl::memory::desc& desc) {
  switch (desc.data_type()) {
    case dnnl::memory::data_type::f32:
      return 4;
    case dnnl::memory::data_type::bf16:
      return 2;
    default:
      break;
  }
  throw Error("fp8-stored weights must come from an f32 or bf16 layout");
}

// out[i] = table[in[i]] for `count` elements, on the OpenMP threads when large.
template <typename T>
void widen_by_table(const uint8_t* in, T* out, int64_t count, const std::array<T, 256>& table) {
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t end = std::min(count, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end; ++i) out[i] = table[in[i]];
  }
}

}  // namespace

size_t Fp8StoredWeights::storage_bytes(const dnnl::memory::desc& desc) {
  return desc.get_size() / element_bytes(desc);
}

void Fp8StoredWeights::narrow_into(const dnnl::memory& packed, std::byte* dst) {
  const dnnl::memory::desc desc = packed.get_desc();
  const int64_t count = static_cast<int64_t>(storage_bytes(desc));
  auto* out = reinterpret_cast<uint8_t*>(dst);
  if (desc.data_type() == dnnl::memory::data_type::f32)
    fp8_e4m3_codes(static_cast<const float*>(packed.get_data_handle()), out, count);
  else
    fp8_e4m3_codes(static_cast<const bf16*>(packed.get_data_handle()), out, count);
}

Fp8StoredWeights::Fp8StoredWeights(const dnnl::memory::desc& desc,
                                   std::shared_ptr<const std::byte> storage)
    : desc_(desc), storage_(std::move(storage)) {
  (void)element_bytes(desc_);  // an f32 or bf16 layout
}

dnnl::memory Fp8StoredWeights::widened() const {
  PARADIFF_CHECK(defined(), "fp8-stored weights used before they were set");
  const size_t bytes = desc_.get_size();
  Tensor& buffer = scratch();
  if (buffer.nbytes() < bytes)
    buffer = Tensor::empty({static_cast<int64_t>((bytes + 3) / 4)}, DType::F32);
  const auto* in = reinterpret_cast<const uint8_t*>(storage_.get());
  const int64_t count = static_cast<int64_t>(storage_bytes(desc_));
  if (desc_.data_type() == dnnl::memory::data_type::f32)
    widen_by_table(in, buffer.data<float>(), count, fp8_e4m3_values());
  else
    widen_by_table(in, static_cast<uint16_t*>(buffer.raw_data()), count, bf16_table());
  return dnnl::memory(desc_, onednn_engine(), buffer.raw_data());
}

}  // namespace paradiff::kernels::cpu
