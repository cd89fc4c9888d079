// Run-time selection among a kernel's instruction-set variants. A hot kernel's body lives in
// kernels/cpu/<name>_body.h and is compiled once per level into namespaces isa_portable,
// isa_avx2, isa_avx512 and (for kernels that store bf16) isa_avx512_bf16 (cmake/KernelIsa.cmake,
// paradiff_isa_kernel). The kernel's dispatching file declares the body's entry points in every
// level with PARADIFF_ISA_DECLARE and calls the one for kernel_isa() through
// PARADIFF_ISA_SELECT (or PARADIFF_ISA_SELECT_NO_BF16 for a kernel without a bf16 variant).
#pragma once

#include <cstdint>

#include "paradiff/core/cpu_isa.h"

namespace paradiff::kernels {

// The level whose variants run: active_cpu_isa() with Amx lowered to Avx512Bf16 (AMX is
// oneDNN's business), Portable on other architectures. Fixed at first use.
CpuIsa kernel_isa();

// Test hook: how many kernel calls each level's variant has served in this process (a kernel
// without a bf16 variant counts under Avx512).
int64_t isa_dispatch_count(CpuIsa level);

// Test hook: the level the variant that kernel_isa() selects was compiled for (from the
// compiler's macros inside isa_level_body.h), e.g. Avx2 when PARADIFF_MAX_ISA=avx2.
CpuIsa selected_variant_isa();

// Counts one call of `level`'s variant (called by select_variant).
void count_dispatch(CpuIsa level);

// The variant for kernel_isa(); `portable` wherever the x86 variants are not built.
template <typename Fn>
Fn* select_variant(Fn* portable, Fn* avx2, Fn* avx512, Fn* avx512_bf16) {
  Fn* chosen = portable;
  CpuIsa level = CpuIsa::Portable;
  switch (kernel_isa()) {
    case CpuIsa::Amx:  // never returned by kernel_isa(), listed for completeness
    case CpuIsa::Avx512Bf16:
      chosen = avx512_bf16;
      level = avx512_bf16 == avx512 ? CpuIsa::Avx512 : CpuIsa::Avx512Bf16;
      break;
    case CpuIsa::Avx512:
      chosen = avx512;
      level = CpuIsa::Avx512;
      break;
    case CpuIsa::Avx2:
      chosen = avx2;
      level = CpuIsa::Avx2;
      break;
    case CpuIsa::Portable:
      break;
  }
  count_dispatch(level);
  return chosen;
}

}  // namespace paradiff::kernels

#if defined(__x86_64__)
#define PARADIFF_ISA_DECLARE(...) \
  namespace isa_portable {        \
  __VA_ARGS__;                    \
  }                               \
  namespace isa_avx2 {            \
  __VA_ARGS__;                    \
  }                               \
  namespace isa_avx512 {          \
  __VA_ARGS__;                    \
  }                               \
  namespace isa_avx512_bf16 {     \
  __VA_ARGS__;                    \
  }
#define PARADIFF_ISA_SELECT(fn)                                                          \
  ::paradiff::kernels::select_variant(&isa_portable::fn, &isa_avx2::fn, &isa_avx512::fn, \
                                      &isa_avx512_bf16::fn)
#define PARADIFF_ISA_SELECT_NO_BF16(fn)                                                  \
  ::paradiff::kernels::select_variant(&isa_portable::fn, &isa_avx2::fn, &isa_avx512::fn, \
                                      &isa_avx512::fn)
#else
#define PARADIFF_ISA_DECLARE(...) \
  namespace isa_portable {        \
  __VA_ARGS__;                    \
  }
#define PARADIFF_ISA_SELECT(fn)                                                                \
  ::paradiff::kernels::select_variant(&isa_portable::fn, &isa_portable::fn, &isa_portable::fn, \
                                      &isa_portable::fn)
#define PARADIFF_ISA_SELECT_NO_BF16(fn) PARADIFF_ISA_SELECT(fn)
#endif
