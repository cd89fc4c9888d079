// Weights stored in float8 e4m3 (kernels/fp8_e4m3.h) but laid out as oneDNN's fp32 or bf16
// prepacked weights (GemmMode::Fp8StoredF32 / Fp8StoredBf16, `--storage-dtype fp8`): one byte per
// element, a quarter of fp32's memory and half of bf16's, widened back for each call by a
// 256-entry table into a per-thread fp32 or bf16 buffer that the primitive reads as its prepacked
// weights. Every e4m3 value is exact in bf16 and fp32, and the layout is a permutation of the
// values plus zero padding, so narrowing the packed copy of e4m3-rounded weights is exact.
#pragma once

#include <dnnl.hpp>

#include <cstddef>
#include <memory>

namespace paradiff::kernels::cpu {

class Fp8StoredWeights {
 public:
  Fp8StoredWeights() = default;
  // Bytes of storage for weights in the fp32 or bf16 layout `desc`: one per element.
  static size_t storage_bytes(const dnnl::memory::desc& desc);
  // Writes `packed` (fp32 or bf16, every value an e4m3 value) as e4m3 codes into `dst`
  // (storage_bytes(packed.get_desc()) bytes); exact for such values.
  static void narrow_into(const dnnl::memory& packed, std::byte* dst);
  // Storage already filled by narrow_into for the fp32 or bf16 layout `desc`.
  Fp8StoredWeights(const dnnl::memory::desc& desc, std::shared_ptr<const std::byte> storage);

  bool defined() const { return storage_ != nullptr; }
  size_t bytes() const { return storage_bytes(desc_); }
  // The weights in the layout's dtype, widened into the calling thread's buffer (grown as needed,
  // kept for later calls): valid until this thread's next widened() call on any fp8 weights.
  dnnl::memory widened() const;

 private:
  dnnl::memory::desc desc_;
  std::shared_ptr<const std::byte> storage_;
};

}  // namespace paradiff::kernels::cpu
