#include "paradiff/pipeline/flux/flux_latents.h"

#include "paradiff/core/logging.h"
#include "paradiff/kernels/patchify.h"

namespace paradiff::pipeline {

Tensor pack_latents(const Tensor& latents) {
  PARADIFF_CHECK(latents.ndim() == 4, "latents must be (B, C, H, W), got ", latents.describe());
  const int64_t b = latents.dim(0), c = latents.dim(1), h = latents.dim(2), w = latents.dim(3);
  PARADIFF_CHECK(h % 2 == 0 && w % 2 == 0, "latent height and width must be even, got ",
                 latents.describe());
  Tensor out = Tensor::empty({b, (h / 2) * (w / 2), 4 * c}, DType::F32);
  kernels::patchify_2x2(latents.dtype() == DType::F32 ? latents : latents.to(DType::F32), out);
  return out;
}

Tensor unpack_latents(const Tensor& packed, int64_t height, int64_t width) {
  PARADIFF_CHECK(packed.ndim() == 3 && height % 2 == 0 && width % 2 == 0 &&
                     packed.dim(1) == (height / 2) * (width / 2) && packed.dim(2) % 4 == 0,
                 "packed latents ", packed.describe(), " do not fit a ", height, "x", width,
                 " latent image");
  Tensor out = Tensor::empty({packed.dim(0), packed.dim(2) / 4, height, width}, DType::F32);
  kernels::unpatchify_2x2(packed.dtype() == DType::F32 ? packed : packed.to(DType::F32), out);
  return out;
}

Tensor latent_image_ids(int64_t packed_height, int64_t packed_width) {
  Tensor ids = Tensor::empty({packed_height * packed_width, 3}, DType::F32);
  kernels::grid_position_ids(packed_height, packed_width, ids);
  return ids;
}

int64_t latent_size(int64_t image_size, int64_t vae_scale_factor) {
  return 2 * (image_size / (vae_scale_factor * 2));
}

int64_t checked_image_size(int64_t size, int64_t vae_scale_factor, const char* what) {
  const int64_t multiple = 2 * vae_scale_factor;
  PARADIFF_CHECK(size >= multiple, what, " must be at least ", multiple, " pixels, got ", size);
  PARADIFF_CHECK(size <= (int64_t{1} << 16), what, " of ", size, " pixels is too large");
  const int64_t rounded = size / multiple * multiple;
  if (rounded != size)
    log_warning(what, " has to be divisible by ", multiple, " but is ", size, "; using ", rounded,
                " (as diffusers resizes it)");
  return rounded;
}

}  // namespace paradiff::pipeline
