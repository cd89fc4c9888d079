#include "paradiff/models/qwen_image/qwen_image_module_tree.h"

#include "paradiff/models/module_tree_builder.h"
#include "paradiff/models/weight_source.h"

namespace paradiff::models::qwen_image {

namespace {

// nn.Sequential(SiLU, Linear): the block's modulation.
void modulation(ModuleTreeBuilder& b, const std::string& name) {
  b.module(name, "Sequential");
  b.module(name + ".0", "SiLU");
  b.linear(name + ".1");
}

// diffusers' Attention with added K/V projections and RMS q/k norms, in its __init__ order.
void joint_attention(ModuleTreeBuilder& b, const std::string& name) {
  b.module(name, "Attention");
  b.rms_norm(name + ".norm_q");
  b.rms_norm(name + ".norm_k");
  b.linear(name + ".to_q");
  b.linear(name + ".to_k");
  b.linear(name + ".to_v");
  b.linear(name + ".add_k_proj");
  b.linear(name + ".add_v_proj");
  b.linear(name + ".add_q_proj");
  b.module(name + ".to_out", "ModuleList");
  b.linear(name + ".to_out.0");
  b.module(name + ".to_out.1", "Dropout");
  b.linear(name + ".to_add_out");
  b.rms_norm(name + ".norm_added_q");
  b.rms_norm(name + ".norm_added_k");
}

void block(ModuleTreeBuilder& b, const std::string& p) {
  b.module(p, "QwenImageTransformerBlock");
  modulation(b, p + ".img_mod");
  b.module(p + ".img_norm1", "LayerNorm");
  joint_attention(b, p + ".attn");
  b.module(p + ".img_norm2", "LayerNorm");
  b.feed_forward(p + ".img_mlp");
  modulation(b, p + ".txt_mod");
  b.module(p + ".txt_norm1", "LayerNorm");
  b.module(p + ".txt_norm2", "LayerNorm");
  b.feed_forward(p + ".txt_mlp");
}

}  // namespace

parallel::ModuleTree qwen_image_transformer_module_tree(const QwenImageTransformerConfig& config,
                                                        const Checkpoint& checkpoint,
                                                        SafetensorsDType as_created) {
  ModuleTreeBuilder b(checkpoint, "QwenImageTransformer2DModel", as_created);
  b.module("", "QwenImageTransformer2DModel");
  b.module("pos_embed", "QwenEmbedRope");
  b.module("time_text_embed", "QwenTimestepProjEmbeddings");
  b.module("time_text_embed.time_proj", "Timesteps");
  b.timestep_embedding("time_text_embed.timestep_embedder");
  b.rms_norm("txt_norm");
  b.linear("img_in");
  b.linear("txt_in");
  b.module("transformer_blocks", "ModuleList");
  for (int64_t i = 0; i < config.num_layers; ++i)
    block(b, "transformer_blocks." + std::to_string(i));
  b.module("norm_out", "AdaLayerNormContinuous");
  b.module("norm_out.silu", "SiLU");
  b.linear("norm_out.linear");
  b.module("norm_out.norm", "LayerNorm");
  b.linear("proj_out");
  return b.finish({"QwenImageTransformerBlock"});
}

parallel::ModuleTree qwen_image_transformer_module_tree(const std::string& folder,
                                                        const std::string& variant) {
  const auto config =
      QwenImageTransformerConfig::load(model_config_path(folder, "transformer folder"));
  return qwen_image_transformer_module_tree(
      config, Checkpoint::open_folder(folder, "diffusion_pytorch_model", variant));
}

}  // namespace paradiff::models::qwen_image
