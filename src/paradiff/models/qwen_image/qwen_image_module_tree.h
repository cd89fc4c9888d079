// QwenImageTransformer2DModel's module tree as placement sees it (parallel::ModuleTree): the
// modules diffusers' class defines, in definition order, with their class names (accelerate's
// no-split block is QwenImageTransformerBlock), and every parameter with its element count from
// the checkpoint's headers. No weights are read. (pos_embed keeps its frequency tables as plain
// attributes, not buffers: it has no tensor to place.)
#pragma once

#include "paradiff/io/checkpoint.h"
#include "paradiff/models/qwen_image/qwen_image_config.h"
#include "paradiff/parallel/placement/module_sizes.h"

namespace paradiff::models::qwen_image {

// `as_created`: the dtype every (floating) parameter counts as. Throws naming the tensor when the
// checkpoint lacks one the config needs or holds one the model does not define.
parallel::ModuleTree qwen_image_transformer_module_tree(
    const QwenImageTransformerConfig& config, const Checkpoint& checkpoint,
    SafetensorsDType as_created = SafetensorsDType::F32);

// The same for a diffusers transformer folder (config.json + safetensors).
parallel::ModuleTree qwen_image_transformer_module_tree(const std::string& folder,
                                                        const std::string& variant = {});

}  // namespace paradiff::models::qwen_image
