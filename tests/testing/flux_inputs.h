// Random inputs for a FluxTransformer2DModel of any config, for tests: normal hidden states and
// text embeddings, uniform timestep (and guidance where the config has it), zero text ids and
// image ids laid out row by row on a grid `grid_width` tokens wide.
#pragma once

#include <random>

#include "paradiff/models/flux/flux_transformer.h"

namespace paradiff::testing {

models::flux::FluxTransformerInputs random_flux_inputs(
    const models::flux::FluxTransformerConfig& config, int64_t batch, int64_t image_tokens,
    int64_t text_tokens, int64_t grid_width, std::mt19937_64& rng);

}  // namespace paradiff::testing
