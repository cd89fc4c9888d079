#include "paradiff/core/cpu_isa.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "paradiff/core/error.h"
#include "paradiff/core/fma_loops.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace paradiff {

namespace {

constexpr const char* kCapVariable = "PARADIFF_MAX_ISA";
constexpr const char* kBf16Variable = "PARADIFF_BF16_ARITHMETIC";

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

// bf16_dot_speed_ratio()'s loops run this many iterations (core/fma_loops.h): 960,000
// instructions, about 0.3-1 ms per loop.
constexpr int64_t kProbeIters = 40000;

#if defined(__x86_64__)
template <typename Loop>
double loop_seconds(Loop loop, volatile float& sink) {
  const auto start = std::chrono::steady_clock::now();
  sink = sink + loop(kProbeIters);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double measure_bf16_dot_speed_ratio() {
  if (hardware_cpu_isa() < CpuIsa::Avx512Bf16) return 0.0;
  volatile float sink = 0.0f;
  double fma = 1e30, dot = 1e30;
  // Alternated, best of each: a round slowed by another process or a frequency change is dropped.
  for (int round = 0; round < 7; ++round) {
    fma = std::min(fma, loop_seconds(avx512_fma_loop, sink));
    dot = std::min(dot, loop_seconds(avx512_bf16_dot_loop, sink));
  }
  return (kBf16DotLoopFlops / dot) / (kAvx512FmaLoopFlops / fma);
}
#else
double measure_bf16_dot_speed_ratio() {
  return 0.0;
}
#endif

// Why native_bf16() says what it says, for cpu_isa_summary().
struct Bf16Decision {
  bool native = false;
  std::string why;  // empty where the level alone decides
};

Bf16Decision decide_bf16_alone() {
  const CpuIsa level = active_cpu_isa();
  if (level < CpuIsa::Avx512Bf16) return {};
  switch (bf16_arithmetic_setting()) {
    case Bf16Arithmetic::Native:
      return {true, str_cat(kBf16Variable, "=native")};
    case Bf16Arithmetic::Fp32:
      return {false, str_cat(kBf16Variable, "=fp32")};
    case Bf16Arithmetic::Auto:
      break;
  }
  if (level == CpuIsa::Amx) return {true, ""};
  const double ratio = bf16_dot_speed_ratio();
  char text[96];
  std::snprintf(text, sizeof(text), "vdpbf16ps at %.2fx the fp32 FMA rate", ratio);
  return {ratio >= kBf16DotPaysRatio, text};
}

const Bf16Decision& bf16_decision_alone() {
  static const Bf16Decision decision = decide_bf16_alone();
  return decision;
}

// The job's agreement (set_job_native_bf16), if one was made before the decision.
std::optional<bool> g_job_native;
std::atomic<bool> g_decided{false};

const Bf16Decision& bf16_decision() {
  static const Bf16Decision decision = [] {
    Bf16Decision d = bf16_decision_alone();
    if (g_job_native && *g_job_native != d.native)
      d = {*g_job_native, "another rank of the job computes bf16 in fp32"};
    g_decided = true;
    return d;
  }();
  return decision;
}

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
  return bf16_decision().native;
}

bool native_bf16_alone() {
  return bf16_decision_alone().native;
}

void set_job_native_bf16(bool native) {
  if (g_decided) {
    PARADIFF_CHECK(native_bf16() == native, "the ranks of this job agreed to compute bf16 ",
                   native ? "natively" : "in fp32", " after this process had decided on ",
                   native_bf16() ? "native bf16" : "fp32",
                   "; set PARADIFF_BF16_ARITHMETIC=fp32 for every rank");
    return;
  }
  g_job_native = native;
}

Bf16Arithmetic bf16_arithmetic_setting() {
  const char* value = std::getenv(kBf16Variable);
  if (value == nullptr || *value == '\0') return Bf16Arithmetic::Auto;
  const std::string_view v(value);
  if (v == "auto") return Bf16Arithmetic::Auto;
  if (v == "native") return Bf16Arithmetic::Native;
  if (v == "fp32") return Bf16Arithmetic::Fp32;
  throw Error(str_cat(kBf16Variable, "=", value,
                      " is not a bf16 arithmetic; use one of auto, native, fp32 (or leave it unset "
                      "for auto)"));
}

double bf16_dot_speed_ratio() {
  static const double ratio = measure_bf16_dot_speed_ratio();
  return ratio;
}

std::string cpu_isa_summary() {
  const CpuIsa active = active_cpu_isa(), hardware = hardware_cpu_isa();
  std::string line = str_cat("isa: ", cpu_isa_name(active));
  if (active != hardware)
    line += str_cat(" (capped by ", kCapVariable, "; cpu has ", cpu_isa_name(hardware), ")");
  line += native_bf16() ? ", bf16 native" : ", bf16 computed in fp32";
  if (!bf16_decision().why.empty()) line += str_cat(" (", bf16_decision().why, ")");
  return line;
}

}  // namespace paradiff
