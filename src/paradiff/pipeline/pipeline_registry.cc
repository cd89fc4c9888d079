#include "paradiff/pipeline/pipeline_registry.h"

#include "paradiff/pipeline/flux/flux_pipeline.h"
#include "paradiff/pipeline/qwen_image/qwen_image_pipeline.h"

namespace paradiff::pipeline {

const std::vector<PipelineRegistration>& registered_pipelines() {
  static const std::vector<PipelineRegistration> table = {
      {"FluxPipeline",
       [](const ModelIndex& index, const PipelineRuntime& runtime) {
         return std::unique_ptr<DiffusionPipeline>(new FluxPipeline(index, runtime));
       }},
      {"QwenImagePipeline",
       [](const ModelIndex& index, const PipelineRuntime& runtime) {
         return std::unique_ptr<DiffusionPipeline>(new QwenImagePipeline(index, runtime));
       }},
  };
  return table;
}

std::vector<std::string> supported_pipeline_classes() {
  std::vector<std::string> out;
  for (const auto& r : registered_pipelines()) out.push_back(r.class_name);
  return out;
}

std::unique_ptr<DiffusionPipeline> load_pipeline(const std::string& folder,
                                                 const PipelineRuntime& runtime) {
  const ModelIndex index = ModelIndex::load(folder);
  for (const auto& r : registered_pipelines())
    if (r.class_name == index.class_name) return r.open(index, runtime);
  std::string supported;
  for (const auto& name : supported_pipeline_classes())
    supported += (supported.empty() ? "" : ", ") + name;
  throw Error(str_cat(folder, "/model_index.json: the pipeline class '", index.class_name,
                      "' is not supported by paradiff (supported: ", supported, ")"));
}

}  // namespace paradiff::pipeline
