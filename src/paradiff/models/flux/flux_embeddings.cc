#include "paradiff/models/flux/flux_embeddings.h"

#include "paradiff/kernels/activations.h"
#include "paradiff/kernels/embedding.h"
#include "paradiff/kernels/pointwise.h"

namespace paradiff::models::flux {

Tensor timestep_sinusoid(const Tensor& t, int64_t channels) {
  PARADIFF_CHECK(t.ndim() == 1, "timestep must be (B), got ", t.describe());
  Tensor out = Tensor::empty({t.dim(0), channels}, DType::F32);
  kernels::timestep_embedding(t, out);
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
