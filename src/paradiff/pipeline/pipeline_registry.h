// The pipelines paradiff runs, keyed on model_index.json's `_class_name`. Adding a pipeline
// family: write pipeline/<family>/<name>_pipeline.{h,cc} implementing DiffusionPipeline and add
// one entry to the table in pipeline_registry.cc.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "paradiff/pipeline/diffusion_pipeline.h"
#include "paradiff/pipeline/model_index.h"

namespace paradiff::pipeline {

struct PipelineRegistration {
  std::string class_name;  // "FluxPipeline"
  // Opens a folder whose model_index.json names this class; checks its components first.
  std::function<std::unique_ptr<DiffusionPipeline>(const ModelIndex&, const PipelineRuntime&)> open;
};

// Every registered pipeline, in a fixed order.
const std::vector<PipelineRegistration>& registered_pipelines();
std::vector<std::string> supported_pipeline_classes();

// Opens the pipeline `folder` holds (dispatching on model_index.json); a class paradiff does not
// run is refused with the list of those it does.
std::unique_ptr<DiffusionPipeline> load_pipeline(const std::string& folder,
                                                 const PipelineRuntime& runtime);

}  // namespace paradiff::pipeline
