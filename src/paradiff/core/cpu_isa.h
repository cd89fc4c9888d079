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

// Whether bf16 arithmetic is native at the active level (AVX512_BF16 or AMX); without it bf16
// tensors are computed in fp32.
bool native_bf16();

// One line for summaries and benchmark headers, e.g.
//   "isa: avx512 (capped by PARADIFF_MAX_ISA; cpu has amx), bf16 computed in fp32".
std::string cpu_isa_summary();

}  // namespace paradiff
