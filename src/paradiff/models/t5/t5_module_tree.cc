#include "paradiff/models/t5/t5_module_tree.h"

#include "paradiff/core/error.h"
#include "paradiff/models/module_tree_builder.h"
#include "paradiff/models/weight_source.h"

namespace paradiff::models::t5 {

namespace {

const char* activation_class(T5Activation act) {
  switch (act) {
    case T5Activation::Relu:
      return "ReLU";
    case T5Activation::Gelu:
      return "GELUActivation";
    case T5Activation::GeluTanh:
      return "NewGELUActivation";
    case T5Activation::Silu:
      return "SiLUActivation";
  }
  return "";
}

void no_bias_linear(ModuleTreeBuilder& b, const std::string& name) {
  b.with_params(name, "Linear", {"weight"});
}

void block(ModuleTreeBuilder& b, const T5Config& config, const std::string& p, bool first) {
  b.module(p, "T5Block");
  b.module(p + ".layer", "ModuleList");
  const std::string attn = p + ".layer.0";
  b.module(attn, "T5LayerSelfAttention");
  b.module(attn + ".SelfAttention", "T5Attention");
  for (const char* proj : {"q", "k", "v", "o"}) no_bias_linear(b, attn + ".SelfAttention." + proj);
  if (first)  // only the first layer has the relative position bias
    b.with_params(attn + ".SelfAttention.relative_attention_bias", "Embedding", {"weight"});
  b.with_params(attn + ".layer_norm", "T5LayerNorm", {"weight"});
  b.module(attn + ".dropout", "Dropout");
  const std::string ff = p + ".layer.1";
  b.module(ff, "T5LayerFF");
  const std::string dense = ff + ".DenseReluDense";
  b.module(dense, config.gated ? "T5DenseGatedActDense" : "T5DenseActDense");
  if (config.gated) {
    no_bias_linear(b, dense + ".wi_0");
    no_bias_linear(b, dense + ".wi_1");
  } else {
    no_bias_linear(b, dense + ".wi");
  }
  no_bias_linear(b, dense + ".wo");
  b.module(dense + ".dropout", "Dropout");
  b.module(dense + ".act", activation_class(config.activation));
  b.with_params(ff + ".layer_norm", "T5LayerNorm", {"weight"});
  b.module(ff + ".dropout", "Dropout");
}

}  // namespace

parallel::ModuleTree t5_encoder_module_tree(const T5Config& config, const Checkpoint& checkpoint,
                                            SafetensorsDType as_created) {
  ModuleTreeBuilder b(checkpoint, "T5EncoderModel", as_created);
  b.module("", "T5EncoderModel");
  if (checkpoint.contains("shared.weight"))
    b.with_params("shared", "Embedding", {"weight"});
  else
    b.tied_param("shared", "Embedding", "weight", "encoder.embed_tokens.weight");
  b.module("encoder", "T5Stack");
  b.tied_param("encoder.embed_tokens", "Embedding", "weight", "shared.weight");
  b.module("encoder.block", "ModuleList");
  for (int64_t i = 0; i < config.num_layers; ++i)
    block(b, config, "encoder.block." + std::to_string(i), i == 0);
  b.with_params("encoder.final_layer_norm", "T5LayerNorm", {"weight"});
  b.module("encoder.dropout", "Dropout");
  for (const std::string& name : checkpoint.names())
    if (name.rfind("decoder.", 0) == 0 || name == "lm_head.weight") b.ignore(name);
  return b.finish({"T5Block"});
}

parallel::ModuleTree t5_encoder_module_tree(const std::string& folder, const std::string& variant) {
  const auto config = T5Config::load(model_config_path(folder, "text encoder folder"));
  return t5_encoder_module_tree(config, Checkpoint::open_folder(folder, "model", variant));
}

}  // namespace paradiff::models::t5
