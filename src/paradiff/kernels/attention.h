// Fused scaled-dot-product attention (flash-style): softmax(scale * Q K^T) V computed tile by
// tile with an online softmax, so the Sq x Skv score matrix never exists in memory. (bf16 with
// AMX instead runs oneDNN matmuls over blocks of query rows, each block's scores against every
// key held at once: cpu/attention_onednn.h.) Also returns
// the log-sum-exp of each query row, which is what ring attention needs to merge partial results
// over K/V blocks (see attention_merge.h).
#pragma once

#include <string_view>

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// q: (B, Sq, H, D); k, v: (B, Skv, H, D), Skv may differ from Sq. q, k and v are all F32 or all
// BF16. out: preallocated (B, Sq, H, D), F32 or BF16 (the caller's choice), not overlapping q, k or
// v. lse: optional, preallocated F32 (B, Sq, H); receives the natural-log log-sum-exp of the scaled
// scores of each query row. scale: multiplies Q K^T; 0 means 1/sqrt(D); any other finite value
// (negative too) is used as given.
//
// Non-causal, no mask. Skv == 0 is defined as an empty softmax: out = 0 and lse = -inf, the
// identity element of merge_attention.
//
// Precision: F32 inputs compute in f32 throughout. BF16 inputs, where the CPU has native bf16
// dot products (active_cpu_isa() avx512_bf16 or amx, and the portable level), compute Q K^T and
// P V as bf16 products with f32 accumulation (P is rounded to bf16 for the P V product, as in
// flash attention on accelerators; at amx the whole rows' softmax comes first, through oneDNN's
// matmuls, and P is rounded unnormalised, P V divided by the row sums in f32); at the avx512 and
// avx2 levels they are widened to f32
// (exactly) and computed in f32 throughout. The softmax is f32 in every case; out is rounded to its
// dtype.
//
// Threads: OpenMP over (batch, head, query tile), as many as omp_get_max_threads(). Scratch: a
// packed copy of K and V for the heads in flight (as many heads as fit in 16 MiB, at least one)
// plus about 250 KiB per thread for a tile of 192 query rows (the oneDNN path: per thread one
// chunk of 512 keys' f32 scores and probabilities for a block of up to 256 query rows, under
// 1 MiB), all from allocate_bytes so that peak accounting sees it.
void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
               Tensor* lse = nullptr, float scale = 0.0f);

// What the CPU attention's tiles run for q, k, v of `dtype` at active_cpu_isa(), for benchmark
// headers and tests: e.g. "avx512_bf16 bf16 (vdpbf16ps)", "avx2 f32 (bf16 widened)", "avx512 f32".
std::string_view attention_tile_implementation(DType dtype);
// What kernels::attention runs for `dtype`: the tiles above, or, for bf16 on CPUs with AMX,
// oneDNN matmuls around an exact row softmax (cpu/attention_onednn.h; "onednn matmul bf16 (amx)").
std::string_view attention_implementation(DType dtype);

// Per-device body, chosen in attention.cc (cpu/attention.cc: the tiles of cpu/attention_tile.h).
namespace impl {
template <DeviceKind D>
void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, Tensor* lse,
               float scale);
}  // namespace impl

}  // namespace paradiff::kernels
