// FLUX's two block kinds, working on one batch element's joint sequence h (S, C): text tokens in
// rows [0, S_txt), image tokens after them. The order is the same whether h holds the whole
// sequence or, under context parallelism, this process's share of it.
#pragma once

#include "paradiff/kernels/linear.h"
#include "paradiff/models/flux/flux_config.h"
#include "paradiff/models/flux/flux_pos_embed.h"
#include "paradiff/models/joint_attention.h"
#include "paradiff/models/module_loader.h"
#include "paradiff/parallel/attention_backend.h"

namespace paradiff::models::flux {

// What a block needs besides its weights for one forward.
struct BlockContext {
  int64_t text_tokens = 0;     // rows of h that are text
  const Tensor* silu_temb;     // (1, C) F32: SiLU(temb) of this batch element
  const RotaryTables* rotary;  // tables for the rows of h
  parallel::AttentionBackend* attention;
  const parallel::ForwardContext* forward;  // how this forward's tokens are split across ranks
  DType activation_dtype;  // kernels::activation_dtype_for(compute): GEMM and attention inputs
};

// FluxTransformerBlock (a "double" block): separate weights for text and image tokens, joint
// attention over both.
class FluxTransformerBlock {
 public:
  FluxTransformerBlock(ModuleLoader& loader, const std::string& prefix,
                       const FluxTransformerConfig& config);
  void forward(Tensor& h, const BlockContext& ctx) const;

 private:
  int64_t heads_, head_dim_, inner_;
  kernels::Linear norm1_, norm1_context_;  // AdaLayerNormZero: C -> 6C
  QkNormProjection image_, text_;          // to_q/k/v + norm_q/k; add_*_proj + norm_added_*
  kernels::Linear to_out_, to_add_out_;
  kernels::Linear ff_in_, ff_out_, ff_context_in_, ff_context_out_;
};

// FluxSingleTransformerBlock: one set of weights over the joint sequence, attention and MLP in
// parallel, one output projection over their concatenation.
class FluxSingleTransformerBlock {
 public:
  FluxSingleTransformerBlock(ModuleLoader& loader, const std::string& prefix,
                             const FluxTransformerConfig& config);
  void forward(Tensor& h, const BlockContext& ctx) const;

 private:
  int64_t heads_, head_dim_, inner_;
  kernels::Linear norm_;  // AdaLayerNormZeroSingle: C -> 3C
  QkNormProjection qkv_;
  kernels::Linear proj_mlp_;
  // proj_out over cat(attn, mlp) = attn @ W[:, :C]^T + mlp @ W[:, C:]^T + b: two GEMMs into one
  // output, so the concatenation is never built.
  kernels::Linear proj_out_attn_, proj_out_mlp_;
};

}  // namespace paradiff::models::flux
