// The module tree of each component of a diffusers pipeline folder, as diffusers' placement
// counts it (from the safetensors headers; no weights read), and the component sizes that
// device_map="balanced" deals out.
//
// A FluxTransformer2DModel gets its full tree in definition order (models/flux); any other
// component's tree comes from its checkpoint's names (enough for its total size, which is all the
// pipeline-level deal uses). What diffusers' meta models hold and the files do not is added, so
// the sizes are the ones diffusers compares: CLIPTextModel's non-persistent `position_ids` buffer
// (int64, max_position_embeddings), T5EncoderModel's `encoder.embed_tokens.weight`, which
// transformers 5 builds untied on the meta device (a second copy of `shared.weight`), and
// Qwen2_5_VLForConditionalGeneration's non-persistent RoPE buffers (`inv_freq` and
// `original_inv_freq` of the text model and of the vision tower).
#pragma once

#include <string>
#include <vector>

#include "paradiff/parallel/placement/module_sizes.h"
#include "paradiff/parallel/placement/pipeline_device_map.h"
#include "paradiff/pipeline/model_index.h"

namespace paradiff::pipeline {

// The components of `index` that are models (those with weights: not the tokenizers, the
// scheduler or absent ones), in model_index.json's (alphabetical) order.
std::vector<std::string> model_components(const ModelIndex& index);

// One component's tree; floating tensors count as F32, as diffusers builds the meta model.
// `variant` (diffusers' variant=, "fp16"): read from that variant's files where the component has
// them, as loading does.
parallel::ModuleTree component_module_tree(const ModelIndex& index, const std::string& component,
                                           const std::string& variant = {});

// compute_module_sizes(tree, dtype)[""] of every model component.
std::vector<parallel::ComponentSize> component_sizes(const ModelIndex& index,
                                                     SafetensorsDType dtype,
                                                     const std::string& variant = {});

}  // namespace paradiff::pipeline
