// torch's CPU random number generator, bit for bit: `torch.Generator().manual_seed(seed)` followed
// by `torch.randn(shape, generator=g, dtype=...)`, which is how diffusers' FluxPipeline draws its
// initial latents (`randn_tensor` with a CPU generator). Same seed, same latents as diffusers.
//
// What torch does (PyTorch 2.x: aten/src/ATen/core/MT19937RNGEngine.h, DistributionsHelper.h,
// native/cpu/DistributionTemplates.h, DistributionKernels.cpp), and what this class reproduces:
// - The engine is the standard 32-bit Mersenne Twister seeded with the low 32 bits of the seed.
// - randn of a tensor with at least 16 elements (the "vectorised" path): for f32, one uniform
//   per element, u = (draw & 0xFFFFFF) / 2^24, all drawn first; then every complete chunk of 16
//   becomes normals in place by Box-Muller on the pairs (j, j + 8): u1 = 1 - u[j],
//   u2 = u[j + 8], r = sqrt(-2 log u1), theta = 2π u2, out[j] = r cos theta,
//   out[j + 8] = r sin theta. If the size is not a multiple of 16, 16 fresh uniforms replace the
//   last 16 elements, which are transformed again. For bf16/f16 the same happens chunk by chunk
//   in a float buffer (no uniforms are drawn for a partial chunk before the final 16), then
//   each value is rounded to the dtype.
// - Fewer than 16 elements: the scalar path, in double: u1, u2 from 53-bit draws (two 32-bit
//   draws, the first one high), r = sqrt(-2 log1p(-u2)), theta = 2π u1; returns r cos theta and
//   keeps r sin theta for the next scalar draw (torch caches it in the generator, so two
//   randn(7) calls share a pair). manual_seed clears the cache.
//
// The float log/sin/cos of the vectorised path depend on torch's CPU kernel (TorchCpuKernel):
// on every x86-64 CPU with AVX2 (AVX-512 ones included: torch never dispatches normal_ to its
// AVX512 kernels) it evaluates Cephes' polynomials in 8-wide AVX2 code whose multiply-adds the
// compiler fused; that is the default here, reproduced operation by operation from torch
// 2.15's binary. Without AVX2 (torch's DEFAULT capability, e.g. ATEN_CPU_CAPABILITY=default,
// or non-x86 CPUs) torch calls libm's logf/cosf/sinf with theta rounded from a double product:
// TorchCpuKernel::Default. The two differ in the last bit of about a third of the values.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "paradiff/core/tensor.h"

namespace paradiff {

// Which of torch's CPU normal_ kernels to reproduce (see above).
enum class TorchCpuKernel { Avx2, Default };

class Generator {
 public:
  // torch's default seed (c10::detail::default_rng_seed_val), used by torch.Generator().
  static constexpr uint64_t kDefaultSeed = 67280421310721ull;

  explicit Generator(uint64_t seed = kDefaultSeed, TorchCpuKernel kernel = TorchCpuKernel::Avx2)
      : kernel_(kernel) {
    manual_seed(seed);
  }

  // torch.Generator.manual_seed: restarts the engine and forgets any cached normal sample.
  // Negative Python seeds arrive as their two's complement (-1 -> 2^64 - 1), as in torch.
  Generator& manual_seed(uint64_t seed);
  uint64_t initial_seed() const { return seed_; }
  TorchCpuKernel kernel() const { return kernel_; }

  // torch.randn(shape, generator=self, dtype=dtype) on CPU. dtype: F32, BF16 or F16.
  Tensor randn(const Shape& shape, DType dtype = DType::F32);
  // torch.Tensor.normal_(mean, std, generator=self) over `count` contiguous elements of `dtype`.
  void normal_(void* data, DType dtype, int64_t count, double mean = 0.0, double stddev = 1.0);

  // The raw draws torch's distributions use.
  uint32_t random() { return engine_(); }
  uint64_t random64();

 private:
  template <typename T>
  void normal_fill(T* data, int64_t count, float mean, float stddev);
  template <typename T>
  void normal_scalar(T* data, int64_t count, double mean, double stddev);
  double normal_double();

  TorchCpuKernel kernel_ = TorchCpuKernel::Avx2;
  uint64_t seed_ = kDefaultSeed;
  std::mt19937 engine_;  // the standard's mt19937 is exactly torch's at::mt19937
  std::optional<double> next_double_normal_;
};

// diffusers' randn_tensor(shape, generator=g, dtype=dtype) with one CPU generator: one
// torch.randn over the whole shape. With batch > 1 the entries are consecutive parts of one
// stream (entry 1 is NOT what the same seed gives for batch 1), so every rank that needs one
// entry must draw the whole tensor and take its slice.
Tensor randn_tensor(const Shape& shape, Generator& generator, DType dtype = DType::F32);
// randn_tensor with a list of generators, one per batch entry (shape[0] == generators.size()):
// entry b is generators[b].randn((1, *shape[1:])). A list of one behaves like one generator.
Tensor randn_tensor(const Shape& shape, std::vector<Generator>& generators,
                    DType dtype = DType::F32);

}  // namespace paradiff
