#include "paradiff/models/flux/flux_module_tree.h"

#include "paradiff/core/error.h"
#include "paradiff/models/module_tree_builder.h"
#include "paradiff/models/weight_source.h"

namespace paradiff::models::flux {

namespace {

void ada_layer_norm_zero(ModuleTreeBuilder& b, const std::string& name, const std::string& cls) {
  b.module(name, cls);
  b.module(name + ".silu", "SiLU");
  b.linear(name + ".linear");
  b.module(name + ".norm", "LayerNorm");
}

void attention_qkv(ModuleTreeBuilder& b, const std::string& name) {
  b.module(name, "FluxAttention");
  b.rms_norm(name + ".norm_q");
  b.rms_norm(name + ".norm_k");
  b.linear(name + ".to_q");
  b.linear(name + ".to_k");
  b.linear(name + ".to_v");
}

void double_block(ModuleTreeBuilder& b, const std::string& p) {
  b.module(p, "FluxTransformerBlock");
  ada_layer_norm_zero(b, p + ".norm1", "AdaLayerNormZero");
  ada_layer_norm_zero(b, p + ".norm1_context", "AdaLayerNormZero");
  attention_qkv(b, p + ".attn");
  b.module(p + ".attn.to_out", "ModuleList");
  b.linear(p + ".attn.to_out.0");
  b.module(p + ".attn.to_out.1", "Dropout");
  b.rms_norm(p + ".attn.norm_added_q");
  b.rms_norm(p + ".attn.norm_added_k");
  b.linear(p + ".attn.add_q_proj");
  b.linear(p + ".attn.add_k_proj");
  b.linear(p + ".attn.add_v_proj");
  b.linear(p + ".attn.to_add_out");
  b.module(p + ".norm2", "LayerNorm");
  b.feed_forward(p + ".ff");
  b.module(p + ".norm2_context", "LayerNorm");
  b.feed_forward(p + ".ff_context");
}

void single_block(ModuleTreeBuilder& b, const std::string& p) {
  b.module(p, "FluxSingleTransformerBlock");
  ada_layer_norm_zero(b, p + ".norm", "AdaLayerNormZeroSingle");
  b.linear(p + ".proj_mlp");
  b.module(p + ".act_mlp", "GELU");
  b.linear(p + ".proj_out");
  attention_qkv(b, p + ".attn");
}

}  // namespace

parallel::ModuleTree flux_transformer_module_tree(const FluxTransformerConfig& config,
                                                  const Checkpoint& checkpoint,
                                                  SafetensorsDType as_created) {
  ModuleTreeBuilder b(checkpoint, "FluxTransformer2DModel", as_created);
  b.module("", "FluxTransformer2DModel");
  b.module("pos_embed", "FluxPosEmbed");
  b.module("time_text_embed", config.guidance_embeds ? "CombinedTimestepGuidanceTextProjEmbeddings"
                                                     : "CombinedTimestepTextProjEmbeddings");
  b.module("time_text_embed.time_proj", "Timesteps");
  b.timestep_embedding("time_text_embed.timestep_embedder");
  if (config.guidance_embeds) b.timestep_embedding("time_text_embed.guidance_embedder");
  b.module("time_text_embed.text_embedder", "PixArtAlphaTextProjection");
  b.linear("time_text_embed.text_embedder.linear_1");
  b.module("time_text_embed.text_embedder.act_1", "SiLU");
  b.linear("time_text_embed.text_embedder.linear_2");
  b.linear("context_embedder");
  b.linear("x_embedder");
  b.module("transformer_blocks", "ModuleList");
  for (int64_t i = 0; i < config.num_layers; ++i)
    double_block(b, "transformer_blocks." + std::to_string(i));
  b.module("single_transformer_blocks", "ModuleList");
  for (int64_t i = 0; i < config.num_single_layers; ++i)
    single_block(b, "single_transformer_blocks." + std::to_string(i));
  b.module("norm_out", "AdaLayerNormContinuous");
  b.module("norm_out.silu", "SiLU");
  b.linear("norm_out.linear");
  b.module("norm_out.norm", "LayerNorm");
  b.linear("proj_out");
  return b.finish({"FluxTransformerBlock", "FluxSingleTransformerBlock"});
}

parallel::ModuleTree flux_transformer_module_tree(const std::string& folder,
                                                  const std::string& variant) {
  const auto config = FluxTransformerConfig::load(model_config_path(folder, "transformer folder"));
  return flux_transformer_module_tree(
      config, Checkpoint::open_folder(folder, "diffusion_pytorch_model", variant));
}

}  // namespace paradiff::models::flux
