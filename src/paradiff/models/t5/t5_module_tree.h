// T5EncoderModel's module tree as placement sees it (parallel::ModuleTree), in the order
// transformers' class creates it: `shared`, then `encoder` (T5Stack) with `embed_tokens` (one
// tensor with shared.weight: a tied pair, counted once), each `encoder.block.i` (T5Block, the
// no-split class), `final_layer_norm` and `dropout`. Element counts come from the checkpoint's
// headers; no weights are read.
#pragma once

#include <string>

#include "paradiff/io/checkpoint.h"
#include "paradiff/models/t5/t5_config.h"
#include "paradiff/parallel/placement/module_sizes.h"

namespace paradiff::models::t5 {

// `as_created`: the dtype every parameter counts as (F32, as the meta model is built). A full
// T5 checkpoint's decoder and lm_head are ignored, as T5EncoderModel ignores them. Throws naming
// the tensor when the checkpoint lacks one the config needs or holds one the model lacks.
parallel::ModuleTree t5_encoder_module_tree(const T5Config& config, const Checkpoint& checkpoint,
                                            SafetensorsDType as_created = SafetensorsDType::F32);

// The same for a transformers folder (config.json + model safetensors).
parallel::ModuleTree t5_encoder_module_tree(const std::string& folder,
                                            const std::string& variant = {});

}  // namespace paradiff::models::t5
