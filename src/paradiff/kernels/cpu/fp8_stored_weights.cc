#include "paradiff/kernels/cpu/fp8_stored_weights.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "paradiff/core/error.h"
#include "paradiff/core/tensor.h"
#include "paradiff/kernels/cpu/onednn_context.h"
#include "paradiff/kernels/fp8_e4m3.h"

namespace paradiff::kernels::cpu {
namespace {

constexpr int64_t kChunk = int64_t{1} << 16;  // elements per OpenMP work item

const std::array<float, 256>& value_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int code = 0; code < 256; ++code) t[code] = fp8_e4m3_value(static_cast<uint8_t>(code));
    return t;
  }();
  return table;
}

Tensor& scratch() {
  thread_local Tensor buffer;
  return buffer;
}

}  // namespace

size_t Fp8StoredWeights::storage_bytes(const dnnl::memory::desc& f32_desc) {
  return f32_desc.get_size() / 4;
}

void Fp8StoredWeights::narrow_into(const dnnl::memory& packed, std::byte* dst) {
  PARADIFF_CHECK(packed.get_desc().data_type() == dnnl::memory::data_type::f32,
                 "fp8-stored weights must come from an f32 layout");
  const int64_t count = static_cast<int64_t>(packed.get_desc().get_size() / 4);
  const auto* in = static_cast<const float*>(packed.get_data_handle());
  auto* out = reinterpret_cast<uint8_t*>(dst);
#pragma omp parallel for schedule(static) if (count > kChunk)
  for (int64_t i = 0; i < count; ++i) out[i] = fp8_e4m3_bits(in[i]);
}

Fp8StoredWeights::Fp8StoredWeights(const dnnl::memory::desc& f32_desc,
                                   std::shared_ptr<const std::byte> storage)
    : desc_(f32_desc), storage_(std::move(storage)) {}

dnnl::memory Fp8StoredWeights::widened() const {
  PARADIFF_CHECK(defined(), "fp8-stored weights used before they were set");
  const size_t bytes = desc_.get_size();
  Tensor& buffer = scratch();
  if (buffer.nbytes() < bytes)
    buffer = Tensor::empty({static_cast<int64_t>((bytes + 3) / 4)}, DType::F32);
  const auto& table = value_table();
  const auto* in = reinterpret_cast<const uint8_t*>(storage_.get());
  float* out = buffer.data<float>();
  const int64_t count = static_cast<int64_t>(bytes / 4);
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t end = std::min(count, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end; ++i) out[i] = table[in[i]];
  }
  return dnnl::memory(desc_, onednn_engine(), buffer.raw_data());
}

}  // namespace paradiff::kernels::cpu
