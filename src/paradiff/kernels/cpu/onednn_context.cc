#include "paradiff/kernels/cpu/onednn_context.h"

#include "paradiff/core/cpu_isa.h"
#include "paradiff/core/error.h"

namespace paradiff::kernels {

namespace {

// oneDNN's own name for a level of core/cpu_isa.h.
dnnl::cpu_isa onednn_isa(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Portable:
      return dnnl::cpu_isa::sse41;
    case CpuIsa::Avx2:
      return dnnl::cpu_isa::avx2;
    case CpuIsa::Avx512:
      return dnnl::cpu_isa::avx512_core;
    case CpuIsa::Avx512Bf16:
      return dnnl::cpu_isa::avx512_core_bf16;
    case CpuIsa::Amx:
      break;
  }
  return dnnl::cpu_isa::avx512_core_amx;
}

// PARADIFF_MAX_ISA caps oneDNN too (what ONEDNN_MAX_CPU_ISA would do), before its first
// primitive: its JIT kernels then use the same instructions as ours.
dnnl::engine make_engine() {
  if (cpu_isa_cap() && active_cpu_isa() < hardware_cpu_isa()) {
    const auto status = dnnl::set_max_cpu_isa(onednn_isa(active_cpu_isa()));
    PARADIFF_CHECK(status == dnnl::status::success, "oneDNN refused the instruction-set cap ",
                   cpu_isa_name(active_cpu_isa()), " (it must be set before oneDNN's first use)");
  }
  return dnnl::engine(dnnl::engine::kind::cpu, 0);
}

}  // namespace

dnnl::engine& onednn_engine() {
  static dnnl::engine engine = make_engine();
  return engine;
}

dnnl::stream& onednn_stream() {
  thread_local dnnl::stream stream(onednn_engine());
  return stream;
}

dnnl::memory::data_type onednn_dtype(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return dnnl::memory::data_type::f32;
    case DType::BF16:
      return dnnl::memory::data_type::bf16;
    case DType::F16:
      return dnnl::memory::data_type::f16;
    case DType::I64:
      break;
  }
  throw Error(str_cat("oneDNN has no ", dtype_name(dtype), " data type for compute"));
}

}  // namespace paradiff::kernels
