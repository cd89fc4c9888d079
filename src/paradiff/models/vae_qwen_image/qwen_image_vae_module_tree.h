// AutoencoderKLQwenImage's module tree as placement sees it (parallel::ModuleTree): every module
// diffusers' class defines, in definition order (the encoder, quant_conv, post_quant_conv, then
// the decoder with its mid block before its up blocks), with its class name; every parameter with
// its element count from the checkpoint's headers. No weights are read. The class declares no
// no-split modules (diffusers' _no_split_modules is None), so the tree has none.
#pragma once

#include <string>

#include "paradiff/io/checkpoint.h"
#include "paradiff/models/vae_qwen_image/qwen_image_vae_config.h"
#include "paradiff/parallel/placement/module_sizes.h"

namespace paradiff::models::vae_qwen_image {

// Throws naming the tensor when the checkpoint lacks one the config needs or holds one the model
// does not define.
parallel::ModuleTree autoencoder_kl_qwen_image_module_tree(
    const AutoencoderKLQwenImageConfig& config, const Checkpoint& checkpoint,
    SafetensorsDType as_created = SafetensorsDType::F32);

// The same for a diffusers vae/ folder (config.json + safetensors).
parallel::ModuleTree autoencoder_kl_qwen_image_module_tree(const std::string& folder,
                                                           const std::string& variant = {});

}  // namespace paradiff::models::vae_qwen_image
