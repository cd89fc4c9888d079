// Qwen2_5_VLForConditionalGeneration's module tree as placement sees it (parallel::ModuleTree),
// for --text-encoder-device-map on a Qwen-Image folder: the whole model as transformers 5
// creates it, `model.visual` (the vision tower: patch_embed, rotary_pos_emb, blocks.i
// (Qwen2_5_VLVisionBlock, no-split), merger), `model.language_model` (embed_tokens, layers.i
// (Qwen2_5_VLDecoderLayer, no-split), norm, rotary_emb) and `lm_head`, with the rotary
// embeddings' non-persistent inv_freq buffers. Element counts come from the checkpoint's headers,
// named either way Qwen2_5_VLTextModel::from_pretrained reads them; no weights are read.
#pragma once

#include <string>

#include "paradiff/io/checkpoint.h"
#include "paradiff/parallel/placement/module_sizes.h"

namespace paradiff::models::qwen2_5_vl {

// A transformers Qwen2_5_VLForConditionalGeneration folder (config.json + model safetensors).
// Throws naming the tensor when the checkpoint lacks one the model needs or holds one it lacks.
parallel::ModuleTree qwen2_5_vl_module_tree(const std::string& folder,
                                            const std::string& variant = {});

}  // namespace paradiff::models::qwen2_5_vl
