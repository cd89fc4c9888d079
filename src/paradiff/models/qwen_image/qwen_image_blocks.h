// Qwen-Image's modules on one batch element's joint sequence h (S, C): text tokens in rows
// [0, S_txt), image tokens after them, whether h holds the whole sequence or, under context
// parallelism, this process's share of it.
#pragma once

#include "paradiff/kernels/linear.h"
#include "paradiff/models/joint_attention.h"
#include "paradiff/models/module_loader.h"
#include "paradiff/models/qwen_image/qwen_image_config.h"
#include "paradiff/models/qwen_image/qwen_image_pos_embed.h"
#include "paradiff/parallel/attention_backend.h"

namespace paradiff::models::qwen_image {

// QwenTimestepProjEmbeddings: Timesteps(256, flip_sin_to_cos, shift 0, scale 1000), then
// TimestepEmbedding (linear_1 -> SiLU -> linear_2).
class QwenTimestepProjEmbeddings {
 public:
  QwenTimestepProjEmbeddings() = default;
  QwenTimestepProjEmbeddings(ModuleLoader& loader, const std::string& prefix, int64_t inner);
  // timestep (B) F32 as the pipeline passes it (t / 1000); returns temb (B, inner) F32.
  Tensor forward(const Tensor& timestep) const;

 private:
  kernels::Linear linear_1_, linear_2_;
};

// What a block needs besides its weights for one forward.
struct BlockContext {
  int64_t text_tokens = 0;     // rows of h that are text
  const Tensor* silu_temb;     // (1, C) F32: SiLU(temb) of this batch element
  const RotaryTables* rotary;  // tables for the rows of h
  parallel::AttentionBackend* attention;
  const parallel::ForwardContext* forward;  // how this forward's tokens are split across ranks
  DType activation_dtype;  // kernels::activation_dtype_for(compute): GEMM and attention inputs
};

// One stream's half of the joint attention and its MLP: to_q/k/v (+ norm_q/k) for the image,
// add_q/k/v_proj (+ norm_added_q/k) for the text.
struct StreamWeights {
  kernels::Linear modulation;  // <stream>_mod.1: C -> 6C (shift, scale, gate) x (attn, mlp)
  QkNormProjection qkv;
  kernels::Linear to_out;
  kernels::Linear mlp_in, mlp_out;
};

// QwenImageTransformerBlock: separate text and image weights, joint attention over both.
class QwenImageTransformerBlock {
 public:
  QwenImageTransformerBlock(ModuleLoader& loader, const std::string& prefix,
                            const QwenImageTransformerConfig& config);
  void forward(Tensor& h, const BlockContext& ctx) const;

 private:
  int64_t heads_, head_dim_, inner_;
  StreamWeights image_, text_;
};

}  // namespace paradiff::models::qwen_image
