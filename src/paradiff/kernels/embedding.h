// Embeddings: rows of a table by index (torch.nn.Embedding: the text encoders' token lookups,
// T5's relative position bias) and the sinusoidal embedding of diffusion timesteps.
#pragma once

#include "paradiff/core/tensor.h"

namespace paradiff::kernels {

// out[r] = table[ids[r]], converted to out's dtype. table: (N, C) F32 or BF16; ids: (M) I64,
// each in [0, N); out: (M, C) F32 or BF16, not overlapping table.
void embedding(const Tensor& table, const Tensor& ids, Tensor& out);

// diffusers' get_timestep_embedding with flip_sin_to_cos=True, downscale_freq_shift=0 (FLUX's
// Timesteps): out[b] = [cos(t_b·f_k), sin(t_b·f_k)], f_k = exp(-ln(10000)·k/half), k < half =
// C/2, each step rounded to f32 as torch computes it. t: (B) F32; out: (B, C) F32, C even.
void timestep_embedding(const Tensor& t, Tensor& out);

// Per-device bodies, chosen in embedding.cc (cpu/embedding.cc). embedding's checks the ids'
// range, as only the device can read them.
namespace impl {
template <DeviceKind D>
void embedding(const Tensor& table, const Tensor& ids, Tensor& out);
template <DeviceKind D>
void timestep_embedding(const Tensor& t, Tensor& out);
}  // namespace impl

}  // namespace paradiff::kernels
