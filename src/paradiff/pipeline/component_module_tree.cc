#include "paradiff/pipeline/component_module_tree.h"

#include <filesystem>

#include "paradiff/core/error.h"
#include "paradiff/io/checkpoint.h"
#include "paradiff/io/json_config.h"
#include "paradiff/models/flux/flux_module_tree.h"
#include "paradiff/models/qwen2_5_vl/qwen2_5_vl_config.h"
#include "paradiff/models/qwen_image/qwen_image_module_tree.h"

namespace paradiff::pipeline {

namespace {

bool is_model_class(const ModelIndex::Component& c) {
  if (c.class_name.empty()) return false;
  return c.class_name.find("Tokenizer") == std::string::npos &&
         c.class_name.find("Scheduler") == std::string::npos &&
         c.class_name.find("Processor") == std::string::npos &&
         c.class_name.find("FeatureExtractor") == std::string::npos;
}

}  // namespace

std::vector<std::string> model_components(const ModelIndex& index) {
  std::vector<std::string> out;
  for (const auto& [name, component] : index.components)
    if (is_model_class(component)) out.push_back(name);
  return out;
}

parallel::ModuleTree component_module_tree(const ModelIndex& index, const std::string& component,
                                           const std::string& variant) {
  auto it = index.components.find(component);
  PARADIFF_CHECK(it != index.components.end() && is_model_class(it->second), index.folder,
                 ": model_index.json has no model component '", component, "'");
  const std::string folder = (std::filesystem::path(index.folder) / component).string();
  const std::string v =
      !variant.empty() && Checkpoint::folder_has_variant(folder, variant) ? variant : "";
  const std::string& cls = it->second.class_name;
  if (cls == "FluxTransformer2DModel") return models::flux::flux_transformer_module_tree(folder, v);
  if (cls == "QwenImageTransformer2DModel")
    return models::qwen_image::qwen_image_transformer_module_tree(folder, v);
  const Checkpoint checkpoint = Checkpoint::open_folder(folder, "diffusion_pytorch_model", v);
  if (cls == "CLIPTextModel" || cls == "CLIPTextModelWithProjection") {
    // transformers 5 loads "text_model.*" into a model without that module; position_ids is a
    // non-persistent buffer the meta model has and the file lacks.
    parallel::ModuleTree tree =
        parallel::ModuleTree::from_checkpoint(checkpoint, SafetensorsDType::F32, "text_model.");
    const JsonConfig config = JsonConfig::load(folder + "/config.json");
    tree.add_tensor("embeddings.position_ids", config.get_int("max_position_embeddings", 77),
                    SafetensorsDType::I64, parallel::TensorKind::NonPersistentBuffer);
    return tree;
  }
  parallel::ModuleTree tree =
      parallel::ModuleTree::from_checkpoint(checkpoint, SafetensorsDType::F32);
  if (cls == "Qwen2_5_VLForConditionalGeneration") {
    // transformers 5 registers two non-persistent F32 buffers in each rotary embedding,
    // inv_freq and original_inv_freq: ceil(head_dim / 2) elements for the text model's, ceil of
    // a quarter of the vision head_dim for the vision tower's (axial RoPE).
    const std::string config_path = folder + "/config.json";
    const int64_t text_head_dim =
        models::qwen2_5_vl::Qwen2_5_VLTextConfig::load(config_path).head_dim();
    const nlohmann::json vision =
        JsonConfig::load(config_path).root().value("vision_config", nlohmann::json::object());
    const int64_t vision_head_dim =
        vision.value("head_dim", int64_t{0}) > 0
            ? vision.value("head_dim", int64_t{0})
            : vision.value("hidden_size", int64_t{3584}) / vision.value("num_heads", int64_t{16});
    const bool new_layout = checkpoint.contains("model.language_model.norm.weight");
    for (const auto& [module, elements] :
         {std::pair{new_layout ? "model.language_model.rotary_emb" : "model.rotary_emb",
                    (text_head_dim + 1) / 2},
          std::pair{new_layout ? "model.visual.rotary_pos_emb" : "visual.rotary_pos_emb",
                    (vision_head_dim / 2 + 1) / 2}})
      for (const char* buffer : {"inv_freq", "original_inv_freq"})
        tree.add_tensor(str_cat(module, ".", buffer), elements, SafetensorsDType::F32,
                        parallel::TensorKind::NonPersistentBuffer);
  }
  if (cls == "T5EncoderModel" && checkpoint.contains("shared.weight") &&
      !checkpoint.contains("encoder.embed_tokens.weight"))
    tree.add_tensor("encoder.embed_tokens.weight", checkpoint.info("shared.weight").numel,
                    SafetensorsDType::F32, parallel::TensorKind::NonPersistentBuffer);
  return tree;
}

std::vector<parallel::ComponentSize> component_sizes(const ModelIndex& index,
                                                     SafetensorsDType dtype,
                                                     const std::string& variant) {
  std::vector<parallel::ComponentSize> out;
  for (const std::string& name : model_components(index))
    out.push_back(
        {name,
         parallel::compute_module_sizes(component_module_tree(index, name, variant), dtype).total(),
         std::nullopt});
  return out;
}

}  // namespace paradiff::pipeline
