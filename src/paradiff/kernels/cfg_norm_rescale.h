// QwenImagePipeline's true classifier-free guidance with norm rescaling: the usual combination
// of the conditional and unconditional predictions, then each token's combined vector scaled
// back to the conditional prediction's L2 norm, so that a large guidance scale steers the
// direction of the velocity without inflating its magnitude.
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// cond, uncond: (..., C) F32 of one shape; out: F32 of that shape (it may alias either input).
// Per row along the last dim, in torch's fp32 order of roundings:
//   comb = uncond + scale · (cond − uncond)
//   out  = comb · (‖cond‖₂ / ‖comb‖₂)
// The norms are accumulated in double and rounded to float (torch.norm's fp32 result, to within
// its own accumulation order). A zero ‖comb‖ gives NaN, as in diffusers: the caller decides.
void cfg_norm_rescale(const Tensor& cond, const Tensor& uncond, float scale, Tensor& out);

// Per-device body, chosen in cfg_norm_rescale.cc (cpu/cfg_norm_rescale.cc).
namespace impl {
template <DeviceKind D>
void cfg_norm_rescale(const Tensor& cond, const Tensor& uncond, float scale, Tensor& out);
}  // namespace impl

}  // namespace paradiff::kernels
