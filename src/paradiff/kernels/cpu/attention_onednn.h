// Attention through oneDNN's matmul, for where its GEMMs beat the tiles of attention_tile.h by far:
// bf16 on CPUs with AMX, which oneDNN reaches by itself (the tiles' vdpbf16ps cannot compete).
// Each head's K^T and V are packed by oneDNN reorders, 512 keys at a time, into the layouts its
// matmuls chose (as many heads at a time as fit in 16 MiB), and per (batch, head, block of 128 or
// 256 query rows, the last one padded with zero queries): the block's queries copied densely;
// then for each chunk of 512 keys, flash-attention style, the raw scores Q K^T in f32, an online
// softmax over them (cpu/softmax_rows_body.h, compiled per level) that applies the scale, keeps
// each row's shift and running sum and rounds the unnormalised exponentials to the dtype of V
// into the chunk's P, and P V set into (first chunk) or added to (the sum post-op, after
// rescaling the rows whose shift moved) a dense f32 block; at the end that block divided by each
// row's sum into out. kernels::attention's contract, lse included; only the rounding differs from
// the tiles.
#pragma once

#include <string_view>

#include "paradiff/core/tensor.h"

namespace paradiff::kernels::attention_detail {

// Whether kernels::attention takes this path for q, k, v of `dtype` at active_cpu_isa().
bool onednn_attention_preferred(DType dtype);

// The path itself (any level oneDNN supports for the dtype: bf16 needs AVX-512); checked inputs,
// Skv > 0. f32 inputs need an f32 output (oneDNN has no f32 x f32 -> bf16 matmul).
void attend_onednn(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, Tensor* lse,
                   float scale);

// "onednn matmul (amx)" and the like, for attention_implementation().
std::string_view onednn_attention_name(DType dtype);

}  // namespace paradiff::kernels::attention_detail
