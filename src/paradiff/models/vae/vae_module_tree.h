// AutoencoderKL's module tree as placement sees it (parallel::ModuleTree): every module
// diffusers' class defines, in definition order (the encoder, then the decoder with its up blocks
// before its mid block, then quant_conv and post_quant_conv), with its class name, so that
// accelerate's no-split ResnetBlock2D (and BasicTransformerBlock, which the FLUX VAE does not
// have) is recognised; every parameter with its element count from the checkpoint's headers. No
// weights are read.
#pragma once

#include <string>

#include "paradiff/io/checkpoint.h"
#include "paradiff/models/vae/vae_config.h"
#include "paradiff/parallel/placement/module_sizes.h"

namespace paradiff::models::vae {

// Throws naming the tensor when the checkpoint lacks one the config needs or holds one the model
// does not define.
parallel::ModuleTree autoencoder_kl_module_tree(
    const AutoencoderKLConfig& config, const Checkpoint& checkpoint,
    SafetensorsDType as_created = SafetensorsDType::F32);

// The same for a diffusers vae/ folder (config.json + safetensors).
parallel::ModuleTree autoencoder_kl_module_tree(const std::string& folder,
                                                const std::string& variant = {});

}  // namespace paradiff::models::vae
