#include "paradiff/models/flux/flux_module_tree.h"

#include <set>

#include "paradiff/core/error.h"
#include "paradiff/models/weight_source.h"

namespace paradiff::models::flux {

namespace {

// Adds modules and their parameters in the order diffusers' __init__ creates them.
class TreeBuilder {
 public:
  TreeBuilder(const Checkpoint& checkpoint, SafetensorsDType as_created)
      : checkpoint_(checkpoint), as_created_(as_created) {}

  void module(const std::string& name, const std::string& class_name) {
    tree_.add_module(name, class_name);
  }
  // A module with parameters `locals` ("weight", "bias"), each required.
  void with_params(const std::string& name, const std::string& class_name,
                   std::initializer_list<const char*> locals) {
    module(name, class_name);
    for (const char* local : locals) {
      const std::string full = name + "." + local;
      PARADIFF_CHECK(checkpoint_.contains(full), checkpoint_.path(), ": tensor '", full,
                     "' is missing (FluxTransformer2DModel defines it)");
      tree_.add_tensor(full, checkpoint_.info(full).numel, as_created_);
      used_.insert(full);
    }
  }
  void linear(const std::string& name) { with_params(name, "Linear", {"weight", "bias"}); }
  void rms_norm(const std::string& name) { with_params(name, "RMSNorm", {"weight"}); }

  parallel::ModuleTree finish() {
    for (const std::string& name : checkpoint_.names())
      PARADIFF_CHECK(used_.count(name) != 0, checkpoint_.path(), ": tensor '", name,
                     "' belongs to no module of FluxTransformer2DModel");
    return std::move(tree_);
  }

 private:
  const Checkpoint& checkpoint_;
  SafetensorsDType as_created_;
  parallel::ModuleTree tree_;
  std::set<std::string> used_;
};

void timestep_embedding(TreeBuilder& b, const std::string& name) {
  b.module(name, "TimestepEmbedding");
  b.linear(name + ".linear_1");
  b.module(name + ".act", "SiLU");
  b.linear(name + ".linear_2");
}

void ada_layer_norm_zero(TreeBuilder& b, const std::string& name, const std::string& cls) {
  b.module(name, cls);
  b.module(name + ".silu", "SiLU");
  b.linear(name + ".linear");
  b.module(name + ".norm", "LayerNorm");
}

void feed_forward(TreeBuilder& b, const std::string& name) {
  b.module(name, "FeedForward");
  b.module(name + ".net", "ModuleList");
  b.module(name + ".net.0", "GELU");
  b.linear(name + ".net.0.proj");
  b.module(name + ".net.1", "Dropout");
  b.linear(name + ".net.2");
}

void attention_qkv(TreeBuilder& b, const std::string& name) {
  b.module(name, "FluxAttention");
  b.rms_norm(name + ".norm_q");
  b.rms_norm(name + ".norm_k");
  b.linear(name + ".to_q");
  b.linear(name + ".to_k");
  b.linear(name + ".to_v");
}

void double_block(TreeBuilder& b, const std::string& p) {
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
  feed_forward(b, p + ".ff");
  b.module(p + ".norm2_context", "LayerNorm");
  feed_forward(b, p + ".ff_context");
}

void single_block(TreeBuilder& b, const std::string& p) {
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
  TreeBuilder b(checkpoint, as_created);
  b.module("", "FluxTransformer2DModel");
  b.module("pos_embed", "FluxPosEmbed");
  b.module("time_text_embed", config.guidance_embeds ? "CombinedTimestepGuidanceTextProjEmbeddings"
                                                     : "CombinedTimestepTextProjEmbeddings");
  b.module("time_text_embed.time_proj", "Timesteps");
  timestep_embedding(b, "time_text_embed.timestep_embedder");
  if (config.guidance_embeds) timestep_embedding(b, "time_text_embed.guidance_embedder");
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
  parallel::ModuleTree tree = b.finish();
  tree.set_no_split({"FluxTransformerBlock", "FluxSingleTransformerBlock"});
  return tree;
}

parallel::ModuleTree flux_transformer_module_tree(const std::string& folder) {
  const auto config = FluxTransformerConfig::load(model_config_path(folder, "transformer folder"));
  return flux_transformer_module_tree(config, Checkpoint::open_folder(folder));
}

}  // namespace paradiff::models::flux
