// Run-time selection of the kernels' instruction-set variants (kernels/cpu/isa_dispatch.h): each
// level runs the code compiled for it, and bf16 is rounded to the same bits at every level. ctest
// runs this binary under PARADIFF_MAX_ISA=avx2, avx512, avx512_bf16 and unset.
#include "paradiff/kernels/cpu/isa_dispatch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "paradiff/kernels/group_norm.h"
#include "paradiff/kernels/pointwise.h"
#include "paradiff/kernels/rms_norm.h"
#include "testing/test_util.h"

namespace paradiff::kernels {
namespace {

// The variant level the dispatcher should pick: the hardware's, lowered to the cap; AMX's
// elementwise kernels are the avx512_bf16 ones.
CpuIsa expected_level() {
#if defined(__x86_64__)
  CpuIsa level = hardware_cpu_isa();
  if (const auto cap = cpu_isa_cap()) level = std::min(level, *cap);
  return std::min(level, CpuIsa::Avx512Bf16);
#else
  return CpuIsa::Portable;
#endif
}

TEST(IsaDispatch, EachLevelRunsTheVariantCompiledForIt) {
  EXPECT_EQ(kernel_isa(), expected_level());
  // The portable variant is built with the build's own flags; every other one must have been
  // compiled for exactly its level.
  if (expected_level() != CpuIsa::Portable) {
    EXPECT_EQ(selected_variant_isa(), expected_level())
        << "PARADIFF_MAX_ISA=" << (cpu_isa_cap() ? cpu_isa_name(*cpu_isa_cap()) : "(unset)");
  }
}

TEST(IsaDispatch, KernelCallsAreCountedUnderTheActiveLevel) {
  const std::vector<CpuIsa> levels = {CpuIsa::Portable, CpuIsa::Avx2, CpuIsa::Avx512,
                                      CpuIsa::Avx512Bf16};
  auto counts = [&] {
    std::vector<int64_t> c;
    for (CpuIsa l : levels) c.push_back(isa_dispatch_count(l));
    return c;
  };
  auto rng = testing::make_rng();
  const Tensor x = testing::random_uniform({3, 40}, DType::BF16, rng);
  const Tensor w = testing::random_uniform({40}, DType::F32, rng);

  // rms_norm has an avx512_bf16 variant; group_norm (fp32 only) runs the avx512 one there.
  std::vector<int64_t> before = counts();
  Tensor normed = Tensor::empty(x.shape(), DType::BF16);
  rms_norm(x, w, 1e-6f, normed);
  std::vector<int64_t> after = counts();
  for (size_t i = 0; i < levels.size(); ++i)
    EXPECT_EQ(after[i] - before[i], levels[i] == expected_level() ? 1 : 0)
        << cpu_isa_name(levels[i]);

  const Tensor image = testing::random_uniform({1, 2, 3, 8}, DType::F32, rng);
  const Tensor gamma = testing::random_uniform({8}, DType::F32, rng);
  before = counts();
  Tensor grouped = Tensor::empty(image.shape(), DType::F32);
  group_norm(image, 2, gamma, gamma, 1e-6f, grouped);
  after = counts();
  const CpuIsa f32_level = std::min(expected_level(), CpuIsa::Avx512);
  int64_t total = 0;
  for (size_t i = 0; i < levels.size(); ++i) {
    total += after[i] - before[i];
    if (levels[i] != f32_level) {
      EXPECT_EQ(after[i], before[i]) << cpu_isa_name(levels[i]);
    }
  }
  EXPECT_GE(total, 1);
}

// Every level's f32 -> bf16 store (integer emulation at avx2/avx512, vcvtneps2bf16 at
// avx512_bf16, which flushes subnormal inputs to zero unless corrected) gives core's
// float_to_bf16 bits: ties to even, subnormals, NaN payloads, infinities, random bit patterns.
TEST(IsaDispatch, Bf16RoundingIsBitIdenticalToFloatToBf16) {
  std::vector<uint32_t> bits = {0x00000000u, 0x80000000u, 0x00000001u, 0x00400000u, 0x807fffffu,
                                0x0000ffffu, 0x00018000u, 0x80008000u, 0x00008000u, 0x00800000u,
                                0x7f800000u, 0xff800000u, 0x7f800001u, 0xff800001u, 0x7fc00001u,
                                0xffffffffu, 0x7f7fffffu, 0x3f808000u, 0x3f818000u, 0x3f800001u,
                                0x3f7fffffu, 0x477f8000u, 0x4f7fffffu};
  std::mt19937 gen(12345);
  // Random bit patterns, and a run of subnormals mixed with normals inside one vector.
  for (int i = 0; i < 20000; ++i) bits.push_back(static_cast<uint32_t>(gen()));
  for (int i = 0; i < 64; ++i)
    bits.push_back(i % 3 == 0 ? (static_cast<uint32_t>(gen()) & 0x807fffffu)
                              : static_cast<uint32_t>(gen()));
  Tensor x = Tensor::empty({static_cast<int64_t>(bits.size())}, DType::F32);
  std::memcpy(x.data<float>(), bits.data(), bits.size() * 4);
  Tensor out = Tensor::empty(x.shape(), DType::BF16);
  scale(x, 1.0f, out);
  int64_t mismatches = 0;
  for (size_t i = 0; i < bits.size(); ++i) {
    float v;
    std::memcpy(&v, &bits[i], 4);
    const uint16_t want = float_to_bf16(v * 1.0f).bits;
    const uint16_t got = out.data<bf16>()[i].bits;
    if (got != want && ++mismatches <= 5)
      ADD_FAILURE() << std::hex << "input 0x" << bits[i] << ": got 0x" << got << ", want 0x"
                    << want;
  }
  EXPECT_EQ(mismatches, 0) << "at level " << cpu_isa_name(kernel_isa());
}

}  // namespace
}  // namespace paradiff::kernels
