// The one place that knows the CPU: which x86 instruction sets the processor and the operating
// system offer (detected once, with cpuid and xgetbv), the cap a user or a test puts on them
// (PARADIFF_MAX_ISA=avx2|avx512|avx512_bf16|amx) and the resulting level every kernel selects its
// implementation from. oneDNN is capped to the same level (kernels/cpu/onednn_context.cc).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace paradiff {

// Ordered levels: each includes everything below it.
enum class CpuIsa {
  Portable = 0,    // no AVX2 (or not x86): the portable C++ kernels
  Avx2 = 1,        // AVX2 + FMA
  Avx512 = 2,      // AVX-512 F + BW + VL + DQ (Skylake-SP, Cascade Lake, Ice Lake, Zen 4)
  Avx512Bf16 = 3,  // + AVX512_BF16 (Cooper Lake, Zen 4/5): native bf16 dot products
  Amx = 4,         // + AMX-BF16 tiles enabled by the OS (Sapphire Rapids and later)
};

// "portable", "avx2", "avx512", "avx512_bf16", "amx".
std::string_view cpu_isa_name(CpuIsa isa);
// The inverse of cpu_isa_name; nullopt for anything else.
std::optional<CpuIsa> parse_cpu_isa(std::string_view name);

// What this processor and operating system support (detected once).
CpuIsa hardware_cpu_isa();

// The cap from PARADIFF_MAX_ISA, nullopt when it is unset or empty. Throws an Error naming the
// variable, its value and the accepted values when it is anything else.
std::optional<CpuIsa> cpu_isa_cap();

// The level the kernels use: the hardware's, lowered to the cap. Computed on first use and fixed
// for the life of the process (a cap set later is not seen).
CpuIsa active_cpu_isa();

// Whether bf16 tensors are computed in bf16 (native bf16 dot products and GEMMs) or in fp32 from
// bf16-stored weights. Never below avx512_bf16. At amx always, at avx512_bf16 (AVX512_BF16
// without AMX) where the dot product pays: a register loop of vdpbf16ps must reach at least
// kBf16DotPaysRatio of the fp32 FMA loop's FLOP rate (bf16_dot_speed_ratio). That rules out CPUs
// whose vdpbf16ps is slow next to their FMAs: on an Intel Xeon (family 6 model 167) KVM guest
// capped to avx512_bf16 (a cloud guest whose hypervisor hides AMX looks the same), vdpbf16ps ran
// at 0.49-0.51x the fp32 rate, and native bf16 FLUX forwards ran at 0.65-0.70x fp32's speed.
// PARADIFF_BF16_ARITHMETIC=native|fp32 overrides the measurement (bf16_arithmetic_setting).
// Decided on first use and fixed for the life of the process.
bool native_bf16();

// What native_bf16() would decide for this process alone: the level, PARADIFF_BF16_ARITHMETIC and
// the measurement, before a job agrees (set_job_native_bf16).
bool native_bf16_alone();

// Every rank of a job must compute bf16 the same way: a context-parallel step exchanges bf16
// activations between ranks that compute natively and fp32 ones where bf16 is computed in fp32,
// and the two would not fit. The distributed runtime (dist/distributed_runtime.h) agrees before
// anything computes, natively only where every rank would, and sets the outcome here; a rank
// that would have been native then computes in fp32 and says why. Throws an Error if this process
// already decided otherwise (something computed before the job agreed).
void set_job_native_bf16(bool native);

enum class Bf16Arithmetic { Auto, Native, Fp32 };
// PARADIFF_BF16_ARITHMETIC: auto (or unset or empty), native or fp32. Throws an Error naming the
// variable, its value and the accepted values when it is anything else. `native` cannot add bf16
// instructions a level lacks: below avx512_bf16 bf16 is computed in fp32 whatever it says.
Bf16Arithmetic bf16_arithmetic_setting();

// A vdpbf16ps loop's FLOP rate over an fp32 vfmadd231ps loop's, on the calling thread (16 lanes
// x 2 pairs x 2 flops per vdpbf16ps, 16 lanes x 2 flops per FMA), each the best of 7 alternated
// rounds of under a millisecond. 0 where the hardware has no AVX512_BF16. Measured once per
// process.
double bf16_dot_speed_ratio();

// The measured ratio at or above which native bf16 pays at avx512_bf16. Real CPUs sit far from
// it on either side (the dot product is a whole multiple or fraction of the FMA rate), so the
// decision does not flip with timing noise; 0.75 rather than 1 because bf16 operands also halve
// the GEMMs' memory traffic.
inline constexpr double kBf16DotPaysRatio = 0.75;

// One line for summaries and benchmark headers, e.g.
//   "isa: avx512 (capped by PARADIFF_MAX_ISA; cpu has amx), bf16 computed in fp32".
std::string cpu_isa_summary();

}  // namespace paradiff
