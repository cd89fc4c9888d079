#include "paradiff/models/flux/flux_embeddings.h"

#include <cmath>

#include "paradiff/kernels/activations.h"
#include "paradiff/kernels/pointwise.h"

namespace paradiff::models::flux {

Tensor timestep_sinusoid(const Tensor& t, int64_t channels) {
  PARADIFF_CHECK(t.ndim() == 1, "timestep must be (B), got ", t.describe());
  t.expect_dtype(DType::F32, "timestep");
  const int64_t b = t.dim(0), half = channels / 2;
  Tensor out = Tensor::empty({b, channels}, DType::F32);
  // exponent_k = (k * -ln(10000)) / half, each step rounded to f32 as torch computes it.
  const float neg_log = static_cast<float>(-std::log(10000.0));
  for (int64_t i = 0; i < b; ++i) {
    const float ti = t.data<float>()[i];
    float* row = out.data<float>() + i * channels;
    for (int64_t k = 0; k < half; ++k) {
      const float exponent = (static_cast<float>(k) * neg_log) / static_cast<float>(half);
      const float arg = ti * std::exp(exponent);
      row[k] = std::cos(arg);  // flip_sin_to_cos: cosines first
      row[half + k] = std::sin(arg);
    }
  }
  return out;
}

TwoLayerMlp::TwoLayerMlp(ModuleLoader& loader, const std::string& prefix, int64_t in, int64_t out)
    : linear_1_(loader.linear(ModuleLoader::join(prefix, "linear_1"), in, out)),
      linear_2_(loader.linear(ModuleLoader::join(prefix, "linear_2"), out, out)) {}

Tensor TwoLayerMlp::forward(const Tensor& x) const {
  return linear_2_.forward(linear_1_.forward(x, DType::F32, kernels::Activation::Silu));
}

FluxTimeTextEmbedding::FluxTimeTextEmbedding(ModuleLoader& loader, const std::string& prefix,
                                             int64_t inner, int64_t pooled_dim, bool guidance)
    : has_guidance_(guidance) {
  timestep_embedder_ =
      TwoLayerMlp(loader, ModuleLoader::join(prefix, "timestep_embedder"), 256, inner);
  if (guidance)
    guidance_embedder_ =
        TwoLayerMlp(loader, ModuleLoader::join(prefix, "guidance_embedder"), 256, inner);
  text_embedder_ =
      TwoLayerMlp(loader, ModuleLoader::join(prefix, "text_embedder"), pooled_dim, inner);
}

Tensor FluxTimeTextEmbedding::forward(const Tensor& timestep, const Tensor& guidance,
                                      const Tensor& pooled) const {
  Tensor temb = timestep_embedder_.forward(timestep_sinusoid(timestep));
  if (has_guidance_)
    kernels::add(temb, guidance_embedder_.forward(timestep_sinusoid(guidance)), temb);
  kernels::add(temb, text_embedder_.forward(pooled), temb);
  return temb;
}

}  // namespace paradiff::models::flux
