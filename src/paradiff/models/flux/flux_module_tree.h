// FluxTransformer2DModel's module tree as placement sees it (parallel::ModuleTree): every module
// diffusers' class defines, in definition order, with its class name (so that accelerate's
// no-split blocks, FluxTransformerBlock and FluxSingleTransformerBlock, are recognised), and every
// parameter with its element count from the checkpoint's headers. No weights are read.
#pragma once

#include "paradiff/io/checkpoint.h"
#include "paradiff/models/flux/flux_config.h"
#include "paradiff/parallel/placement/module_sizes.h"

namespace paradiff::models::flux {

// `as_created`: the dtype every (floating) parameter counts as, F32 as diffusers builds the meta
// model before casting. Throws naming the tensor when the checkpoint lacks one the config needs
// or holds one the model does not define.
parallel::ModuleTree flux_transformer_module_tree(
    const FluxTransformerConfig& config, const Checkpoint& checkpoint,
    SafetensorsDType as_created = SafetensorsDType::F32);

// The same for a diffusers transformer folder (config.json + safetensors).
parallel::ModuleTree flux_transformer_module_tree(const std::string& folder,
                                                  const std::string& variant = {});

}  // namespace paradiff::models::flux
