// The oneDNN engine and streams shared by every kernel that calls oneDNN.
#pragma once

#include <dnnl.hpp>

#include "paradiff/core/dtype.h"

namespace paradiff::kernels {

dnnl::engine& onednn_engine();
// One stream per calling thread (oneDNN CPU streams are cheap; sharing one across threads is not
// allowed while executing).
dnnl::stream& onednn_stream();
dnnl::memory::data_type onednn_dtype(DType dtype);

}  // namespace paradiff::kernels
