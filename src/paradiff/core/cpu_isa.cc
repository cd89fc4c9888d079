#include "paradiff/core/cpu_isa.h"

#include <cstdint>
#include <cstdlib>

#include "paradiff/core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace paradiff {

namespace {

constexpr const char* kCapVariable = "PARADIFF_MAX_ISA";

#if defined(__x86_64__) || defined(__i386__)
// xgetbv(0): the register state the operating system saves on context switches.
uint64_t enabled_register_state() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

CpuIsa detect() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return CpuIsa::Portable;
  __cpuid_count(1, 0, a, b, c, d);
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28);
  if (!osxsave || !avx || !fma) return CpuIsa::Portable;
  const uint64_t xcr0 = enabled_register_state();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;    // SSE + AVX
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;  // + opmask, ZMM0-15 high, ZMM16-31
  const bool tile_state = (xcr0 & (3ull << 17)) == (3ull << 17);  // XTILECFG + XTILEDATA
  __cpuid_count(7, 0, a, b, c, d);
  const unsigned leaf7_ebx = b, leaf7_edx = d;
  const bool avx2 = leaf7_ebx & (1u << 5);
  if (!ymm_state || !avx2) return CpuIsa::Portable;
  const bool avx512 = (leaf7_ebx & (1u << 16)) &&  // F
                      (leaf7_ebx & (1u << 17)) &&  // DQ
                      (leaf7_ebx & (1u << 30)) &&  // BW
                      (leaf7_ebx & (1u << 31));    // VL
  if (!zmm_state || !avx512) return CpuIsa::Avx2;
  __cpuid_count(7, 1, a, b, c, d);
  const bool avx512_bf16 = a & (1u << 5);
  const bool amx_bf16 = (leaf7_edx & (1u << 22)) && (leaf7_edx & (1u << 24));  // AMX-BF16, TILE
  if (!avx512_bf16) return CpuIsa::Avx512;
  // Linux also wants a process to ask for the tile data state (arch_prctl); oneDNN does that
  // itself before it uses AMX, so the OS having the state enabled is what counts here.
  if (!amx_bf16 || !tile_state) return CpuIsa::Avx512Bf16;
  return CpuIsa::Amx;
}
#else
CpuIsa detect() {
  return CpuIsa::Portable;
}
#endif

}  // namespace

std::string_view cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Portable:
      return "portable";
    case CpuIsa::Avx2:
      return "avx2";
    case CpuIsa::Avx512:
      return "avx512";
    case CpuIsa::Avx512Bf16:
      return "avx512_bf16";
    case CpuIsa::Amx:
      return "amx";
  }
  return "?";
}

std::optional<CpuIsa> parse_cpu_isa(std::string_view name) {
  for (CpuIsa isa :
       {CpuIsa::Portable, CpuIsa::Avx2, CpuIsa::Avx512, CpuIsa::Avx512Bf16, CpuIsa::Amx})
    if (name == cpu_isa_name(isa)) return isa;
  return std::nullopt;
}

CpuIsa hardware_cpu_isa() {
  static const CpuIsa isa = detect();
  return isa;
}

std::optional<CpuIsa> cpu_isa_cap() {
  const char* value = std::getenv(kCapVariable);
  if (value == nullptr || *value == '\0') return std::nullopt;
  if (auto isa = parse_cpu_isa(value)) return isa;
  throw Error(str_cat(kCapVariable, "=", value,
                      " is not an instruction-set level; use one of portable, avx2, avx512, "
                      "avx512_bf16, amx (or leave it unset for everything this CPU has)"));
}

CpuIsa active_cpu_isa() {
  static const CpuIsa isa = [] {
    const CpuIsa hardware = hardware_cpu_isa();
    const auto cap = cpu_isa_cap();
    return cap && *cap < hardware ? *cap : hardware;
  }();
  return isa;
}

bool native_bf16() {
  return active_cpu_isa() >= CpuIsa::Avx512Bf16;
}

std::string cpu_isa_summary() {
  const CpuIsa active = active_cpu_isa(), hardware = hardware_cpu_isa();
  std::string line = str_cat("isa: ", cpu_isa_name(active));
  if (active != hardware)
    line += str_cat(" (capped by ", kCapVariable, "; cpu has ", cpu_isa_name(hardware), ")");
  line += native_bf16() ? ", bf16 native" : ", bf16 computed in fp32";
  return line;
}

}  // namespace paradiff
