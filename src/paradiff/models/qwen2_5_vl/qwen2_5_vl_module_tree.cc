#include "paradiff/models/qwen2_5_vl/qwen2_5_vl_module_tree.h"

#include <algorithm>

#include "paradiff/core/error.h"
#include "paradiff/io/json_config.h"
#include "paradiff/models/module_tree_builder.h"
#include "paradiff/models/qwen2_5_vl/qwen2_5_vl_config.h"
#include "paradiff/models/weight_source.h"

namespace paradiff::models::qwen2_5_vl {

namespace {

bool starts_with(const std::string& s, const std::string& p) {
  return s.compare(0, p.size(), p) == 0;
}

void no_bias_linear(ModuleTreeBuilder& b, const std::string& name) {
  b.with_params(name, "Linear", {"weight"});
}

void rms_norm(ModuleTreeBuilder& b, const std::string& name) {
  b.with_params(name, "Qwen2_5_VLRMSNorm", {"weight"});
}

// The rotary embedding's two non-persistent fp32 buffers of `numel` frequencies.
void rotary(ModuleTreeBuilder& b, const std::string& name, const std::string& class_name,
            int64_t numel) {
  b.module(name, class_name);
  for (const char* buffer : {".inv_freq", ".original_inv_freq"})
    b.buffer(name + buffer, numel, SafetensorsDType::F32,
             parallel::TensorKind::NonPersistentBuffer);
}

}  // namespace

parallel::ModuleTree qwen2_5_vl_module_tree(const std::string& folder, const std::string& variant) {
  const std::string config_path = model_config_path(folder, "text encoder folder");
  const auto text = Qwen2_5_VLTextConfig::load(config_path);
  const JsonConfig json = JsonConfig::load(config_path);
  const nlohmann::json vision = json.root().value("vision_config", nlohmann::json::object());
  const int64_t vision_hidden = vision.value("hidden_size", int64_t{3584});
  const int64_t vision_heads = vision.value("num_heads", int64_t{16});
  PARADIFF_CHECK(vision_heads > 0 && vision_hidden % vision_heads == 0, config_path,
                 ": vision_config.hidden_size ", vision_hidden,
                 " is not a multiple of vision_config.num_heads ", vision_heads);
  const Checkpoint checkpoint = Checkpoint::open_folder(folder, "model", variant);
  // Older files name the language model "model.*" and the vision tower "visual.*".
  const bool legacy = checkpoint.contains("model.embed_tokens.weight");
  auto stored = [legacy](const std::string& name) {
    if (!legacy) return name;
    if (starts_with(name, "model.language_model."))
      return "model." + name.substr(std::string("model.language_model.").size());
    if (starts_with(name, "model.visual.")) return name.substr(std::string("model.").size());
    return name;
  };
  const std::string visual_prefix = legacy ? "visual.blocks." : "model.visual.blocks.";
  int64_t vision_depth = 0;
  for (const std::string& name : checkpoint.names())
    if (starts_with(name, visual_prefix)) {
      const std::string rest = name.substr(visual_prefix.size());
      vision_depth =
          std::max<int64_t>(vision_depth, std::stoll(rest.substr(0, rest.find('.'))) + 1);
    }

  ModuleTreeBuilder b(checkpoint, "Qwen2_5_VLForConditionalGeneration", SafetensorsDType::F32,
                      stored);
  b.module("", "Qwen2_5_VLForConditionalGeneration");
  b.module("model", "Qwen2_5_VLModel");
  const std::string v = "model.visual";
  b.module(v, "Qwen2_5_VisionTransformerPretrainedModel");
  b.module(v + ".patch_embed", "Qwen2_5_VisionPatchEmbed");
  b.with_params(v + ".patch_embed.proj", "Conv3d", {"weight"});
  rotary(b, v + ".rotary_pos_emb", "Qwen2_5_VLVisionRotaryEmbedding",
         vision_hidden / vision_heads / 4);
  b.module(v + ".blocks", "ModuleList");
  for (int64_t i = 0; i < vision_depth; ++i) {
    const std::string p = v + ".blocks." + std::to_string(i);
    b.module(p, "Qwen2_5_VLVisionBlock");
    rms_norm(b, p + ".norm1");
    rms_norm(b, p + ".norm2");
    b.module(p + ".attn", "Qwen2_5_VLVisionAttention");
    b.linear(p + ".attn.qkv");
    b.linear(p + ".attn.proj");
    b.module(p + ".mlp", "Qwen2_5_VLMLP");
    b.linear(p + ".mlp.gate_proj");
    b.linear(p + ".mlp.up_proj");
    b.linear(p + ".mlp.down_proj");
    b.module(p + ".mlp.act_fn", "SiLUActivation");
  }
  b.module(v + ".merger", "Qwen2_5_VLPatchMerger");
  rms_norm(b, v + ".merger.ln_q");
  b.module(v + ".merger.mlp", "Sequential");
  b.linear(v + ".merger.mlp.0");
  b.module(v + ".merger.mlp.1", "GELU");
  b.linear(v + ".merger.mlp.2");
  const std::string l = "model.language_model";
  b.module(l, "Qwen2_5_VLTextModel");
  b.with_params(l + ".embed_tokens", "Embedding", {"weight"});
  b.module(l + ".layers", "ModuleList");
  for (int64_t i = 0; i < text.num_hidden_layers; ++i) {
    const std::string p = l + ".layers." + std::to_string(i);
    b.module(p, "Qwen2_5_VLDecoderLayer");
    b.module(p + ".self_attn", "Qwen2_5_VLAttention");
    b.linear(p + ".self_attn.q_proj");
    b.linear(p + ".self_attn.k_proj");
    b.linear(p + ".self_attn.v_proj");
    no_bias_linear(b, p + ".self_attn.o_proj");
    b.module(p + ".mlp", "Qwen2MLP");
    no_bias_linear(b, p + ".mlp.gate_proj");
    no_bias_linear(b, p + ".mlp.up_proj");
    no_bias_linear(b, p + ".mlp.down_proj");
    b.module(p + ".mlp.act_fn", "SiLUActivation");
    rms_norm(b, p + ".input_layernorm");
    rms_norm(b, p + ".post_attention_layernorm");
  }
  rms_norm(b, l + ".norm");
  rotary(b, l + ".rotary_emb", "Qwen2_5_VLRotaryEmbedding", text.head_dim() / 2);
  no_bias_linear(b, "lm_head");
  return b.finish({"Qwen2_5_VLDecoderLayer", "Qwen2_5_VLVisionBlock"});
}

}  // namespace paradiff::models::qwen2_5_vl
