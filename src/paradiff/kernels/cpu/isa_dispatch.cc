// Body of isa_dispatch.h: the level the variants run at and the per-level call counts.
#include "paradiff/kernels/cpu/isa_dispatch.h"

#include <algorithm>
#include <atomic>

namespace paradiff::kernels {

PARADIFF_ISA_DECLARE(CpuIsa compiled_isa())

namespace {
std::atomic<int64_t> dispatch_counts[5];
}  // namespace

CpuIsa kernel_isa() {
#if defined(__x86_64__)
  static const CpuIsa level = std::min(active_cpu_isa(), CpuIsa::Avx512Bf16);
#else
  static const CpuIsa level = CpuIsa::Portable;
#endif
  return level;
}

CpuIsa selected_variant_isa() {
  return PARADIFF_ISA_SELECT(compiled_isa)();
}

int64_t isa_dispatch_count(CpuIsa level) {
  return dispatch_counts[static_cast<int>(level)].load(std::memory_order_relaxed);
}

void count_dispatch(CpuIsa level) {
  dispatch_counts[static_cast<int>(level)].fetch_add(1, std::memory_order_relaxed);
}

}  // namespace paradiff::kernels
