#include "paradiff/kernels/cpu/onednn_context.h"

#include "paradiff/core/error.h"

namespace paradiff::kernels {

dnnl::engine& onednn_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
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
