// The conditioning vector temb of FLUX: sinusoidal timestep (and guidance) embeddings through
// small MLPs plus a projection of the pooled text embedding
// (CombinedTimestep[Guidance]TextProjEmbeddings in diffusers).
#pragma once

#include "paradiff/kernels/linear.h"
#include "paradiff/models/module_loader.h"

namespace paradiff::models::flux {

// diffusers' Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0): for t (B) F32,
// [cos(t·f_k), sin(t·f_k)] with f_k = exp(-ln(10000)·k/half), computed in f32 step by step as
// torch does, so that large t (up to 1000) rounds the same way.
Tensor timestep_sinusoid(const Tensor& t, int64_t channels = 256);

// linear_1 -> SiLU -> linear_2 (TimestepEmbedding and PixArtAlphaTextProjection share it).
class TwoLayerMlp {
 public:
  TwoLayerMlp() = default;
  TwoLayerMlp(ModuleLoader& loader, const std::string& prefix, int64_t in, int64_t out);
  Tensor forward(const Tensor& x) const;  // (B, in) -> (B, out) F32

 private:
  kernels::Linear linear_1_, linear_2_;
};

class FluxTimeTextEmbedding {
 public:
  FluxTimeTextEmbedding() = default;
  // prefix "time_text_embed": timestep_embedder, [guidance_embedder], text_embedder.
  FluxTimeTextEmbedding(ModuleLoader& loader, const std::string& prefix, int64_t inner,
                        int64_t pooled_dim, bool guidance);
  // timestep, guidance: (B) already multiplied by 1000; pooled: (B, pooled_dim).
  // Returns temb (B, inner) F32. guidance must be defined exactly when the model has guidance
  // embeddings.
  Tensor forward(const Tensor& timestep, const Tensor& guidance, const Tensor& pooled) const;
  bool has_guidance() const { return has_guidance_; }

 private:
  bool has_guidance_ = false;
  TwoLayerMlp timestep_embedder_, guidance_embedder_, text_embedder_;
};

}  // namespace paradiff::models::flux
