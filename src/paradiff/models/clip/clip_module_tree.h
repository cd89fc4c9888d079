// CLIPTextModel's module tree as placement sees it (parallel::ModuleTree), in the order
// transformers 5 creates it: `embeddings` (CLIPTextEmbeddings, a no-split class, with its
// non-persistent position_ids buffer, token_embedding, position_embedding), each
// `encoder.layers.i` (CLIPEncoderLayer, no-split), `final_layer_norm`. Element counts come from the
// checkpoint's headers (names with or without the "text_model." prefix of older checkpoints,
// which transformers 5 drops on load); no weights are read.
#pragma once

#include <string>

#include "paradiff/io/checkpoint.h"
#include "paradiff/models/clip/clip_text_config.h"
#include "paradiff/parallel/placement/module_sizes.h"

namespace paradiff::models::clip {

// `as_created`: the dtype every floating parameter counts as (F32, as the meta model is built).
// Throws naming the tensor when the checkpoint lacks one the config needs or holds one the model
// lacks.
parallel::ModuleTree clip_text_module_tree(const CLIPTextConfig& config,
                                           const Checkpoint& checkpoint,
                                           SafetensorsDType as_created = SafetensorsDType::F32);

// The same for a transformers folder (config.json + model safetensors).
parallel::ModuleTree clip_text_module_tree(const std::string& folder,
                                           const std::string& variant = {});

// The prefix a CLIP checkpoint's names carry ("text_model." before transformers 5, else "").
std::string clip_checkpoint_prefix(const Checkpoint& checkpoint);

}  // namespace paradiff::models::clip
