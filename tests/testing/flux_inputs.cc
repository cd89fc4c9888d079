#include "testing/flux_inputs.h"

#include "testing/test_util.h"

namespace paradiff::testing {

models::flux::FluxTransformerInputs random_flux_inputs(const models::flux::FluxTransformerConfig& c,
                                                       int64_t batch, int64_t image, int64_t text,
                                                       int64_t grid_width, std::mt19937_64& rng) {
  models::flux::FluxTransformerInputs in;
  in.hidden_states = random_normal({batch, image, c.in_channels}, DType::F32, rng);
  in.encoder_hidden_states = random_normal({batch, text, c.joint_attention_dim}, DType::F32, rng);
  in.pooled_projections = random_normal({batch, c.pooled_projection_dim}, DType::F32, rng);
  in.timestep = random_uniform({batch}, DType::F32, rng, 0.0f, 1.0f);
  in.txt_ids = Tensor::zeros({text, 3}, DType::F32);
  in.img_ids = Tensor::zeros({image, 3}, DType::F32);
  for (int64_t i = 0; i < image; ++i) {
    in.img_ids.data<float>()[i * 3 + 1] = static_cast<float>(i / grid_width);
    in.img_ids.data<float>()[i * 3 + 2] = static_cast<float>(i % grid_width);
  }
  if (c.guidance_embeds) in.guidance = random_uniform({batch}, DType::F32, rng, 1, 5);
  return in;
}

}  // namespace paradiff::testing
