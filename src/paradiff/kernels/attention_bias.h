// Attention with an additive bias on the scores and an optional causal mask, for the text
// encoders: T5 adds its relative position bias (and does not scale Q Kᵀ), CLIP's text model
// masks causally. Their sequences are short (CLIP 77, T5 <= 512 tokens), so each query row's
// scores are computed in full rather than in flash-style tiles.
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// out = softmax(scale · Q Kᵀ + bias, masked) V for every batch entry and head.
//
// q: (B, Sq, H, D); k, v: (B, Skv, H, D); q, k and v all F32 or all BF16.
// bias: an undefined Tensor for none, or F32 (H, Sq, Skv), the same for every batch entry.
// causal: query i sees keys j <= i only (requires Sq == Skv).
// scale: multiplies Q Kᵀ as given (T5: 1; CLIP: 1/√D).
// out: preallocated (B, Sq, H, D), F32 or BF16, not overlapping q, k or v.
//
// Precision: fp32 throughout (bf16 inputs are widened; their products are exact in fp32). Skv == 0
// gives out = 0. Threads: OpenMP over (batch, head); scratch (K and V of one head in fp32 per
// thread) comes from allocate_bytes.
void attention_with_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                         bool causal, float scale, Tensor& out);

// Per-device body, chosen in attention_bias.cc (cpu/attention_bias.cc).
namespace impl {
template <DeviceKind D>
void attention_with_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                         bool causal, float scale, Tensor& out);
}  // namespace impl

}  // namespace paradiff::kernels
