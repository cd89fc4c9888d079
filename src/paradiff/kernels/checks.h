// Input checks shared by the kernels' dispatch files (kernels/<op>.cc).
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// Checks that t is F32 or BF16; `what` names it in the message.
inline void expect_f32_or_bf16(const Tensor& t, const char* what) {
  PARADIFF_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16, what,
                 " must be f32 or bf16, got ", t.describe());
}

}  // namespace paradiff::kernels
