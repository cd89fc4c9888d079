#include "paradiff/models/clip/clip_module_tree.h"

#include "paradiff/core/error.h"
#include "paradiff/models/module_tree_builder.h"
#include "paradiff/models/weight_source.h"

namespace paradiff::models::clip {

namespace {

const char* activation_class(ClipActivation act) {
  switch (act) {
    case ClipActivation::QuickGelu:
      return "QuickGELUActivation";
    case ClipActivation::Gelu:
      return "GELUActivation";
    case ClipActivation::GeluTanh:
      return "NewGELUActivation";
    case ClipActivation::Relu:
      return "ReLU";
    case ClipActivation::Silu:
      return "SiLUActivation";
  }
  return "";
}

void layer_norm(ModuleTreeBuilder& b, const std::string& name) {
  b.with_params(name, "LayerNorm", {"weight", "bias"});
}

}  // namespace

std::string clip_checkpoint_prefix(const Checkpoint& checkpoint) {
  return checkpoint.contains("text_model.embeddings.token_embedding.weight") ? "text_model." : "";
}

parallel::ModuleTree clip_text_module_tree(const CLIPTextConfig& config,
                                           const Checkpoint& checkpoint,
                                           SafetensorsDType as_created) {
  ModuleTreeBuilder b(checkpoint, "CLIPTextModel", as_created,
                      [prefix = clip_checkpoint_prefix(checkpoint)](const std::string& name) {
                        return prefix + name;
                      });
  b.module("", "CLIPTextModel");
  b.module("embeddings", "CLIPTextEmbeddings");
  b.buffer("embeddings.position_ids", config.max_position_embeddings, SafetensorsDType::I64,
           parallel::TensorKind::NonPersistentBuffer);
  b.with_params("embeddings.token_embedding", "Embedding", {"weight"});
  b.with_params("embeddings.position_embedding", "Embedding", {"weight"});
  b.module("encoder", "CLIPEncoder");
  b.module("encoder.layers", "ModuleList");
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string p = "encoder.layers." + std::to_string(i);
    b.module(p, "CLIPEncoderLayer");
    b.module(p + ".self_attn", "CLIPAttention");
    for (const char* proj : {"k_proj", "v_proj", "q_proj", "out_proj"})
      b.linear(p + ".self_attn." + proj);
    layer_norm(b, p + ".layer_norm1");
    b.module(p + ".mlp", "CLIPMLP");
    b.module(p + ".mlp.activation_fn", activation_class(config.hidden_act));
    b.linear(p + ".mlp.fc1");
    b.linear(p + ".mlp.fc2");
    layer_norm(b, p + ".layer_norm2");
  }
  layer_norm(b, "final_layer_norm");
  return b.finish({"CLIPEncoderLayer", "CLIPTextEmbeddings", "CLIPVisionEmbeddings"});
}

parallel::ModuleTree clip_text_module_tree(const std::string& folder, const std::string& variant) {
  const auto config = CLIPTextConfig::load(model_config_path(folder, "text encoder folder"));
  return clip_text_module_tree(config, Checkpoint::open_folder(folder, "model", variant));
}

}  // namespace paradiff::models::clip
