#include "paradiff/pipeline/flux/flux_latents.h"

#include "paradiff/core/logging.h"

namespace paradiff::pipeline {

Tensor pack_latents(const Tensor& latents) {
  PARADIFF_CHECK(latents.ndim() == 4, "latents must be (B, C, H, W), got ", latents.describe());
  const int64_t b = latents.dim(0), c = latents.dim(1), h = latents.dim(2), w = latents.dim(3);
  PARADIFF_CHECK(h % 2 == 0 && w % 2 == 0, "latent height and width must be even, got ",
                 latents.describe());
  const Tensor src = latents.dtype() == DType::F32 ? latents : latents.to(DType::F32);
  Tensor out = Tensor::empty({b, (h / 2) * (w / 2), 4 * c}, DType::F32);
  const float* in = src.data<float>();
  float* o = out.data<float>();
  for (int64_t n = 0; n < b; ++n)
    for (int64_t y = 0; y < h / 2; ++y)
      for (int64_t x = 0; x < w / 2; ++x)
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t dy = 0; dy < 2; ++dy)
            for (int64_t dx = 0; dx < 2; ++dx)
              o[((n * (h / 2) + y) * (w / 2) + x) * 4 * c + ch * 4 + dy * 2 + dx] =
                  in[((n * c + ch) * h + 2 * y + dy) * w + 2 * x + dx];
  return out;
}

Tensor unpack_latents(const Tensor& packed, int64_t height, int64_t width) {
  PARADIFF_CHECK(packed.ndim() == 3 && height % 2 == 0 && width % 2 == 0 &&
                     packed.dim(1) == (height / 2) * (width / 2) && packed.dim(2) % 4 == 0,
                 "packed latents ", packed.describe(), " do not fit a ", height, "x", width,
                 " latent image");
  const int64_t b = packed.dim(0), c = packed.dim(2) / 4, h = height, w = width;
  const Tensor src = packed.dtype() == DType::F32 ? packed : packed.to(DType::F32);
  Tensor out = Tensor::empty({b, c, h, w}, DType::F32);
  const float* in = src.data<float>();
  float* o = out.data<float>();
  for (int64_t n = 0; n < b; ++n)
    for (int64_t y = 0; y < h / 2; ++y)
      for (int64_t x = 0; x < w / 2; ++x)
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t dy = 0; dy < 2; ++dy)
            for (int64_t dx = 0; dx < 2; ++dx)
              o[((n * c + ch) * h + 2 * y + dy) * w + 2 * x + dx] =
                  in[((n * (h / 2) + y) * (w / 2) + x) * 4 * c + ch * 4 + dy * 2 + dx];
  return out;
}

Tensor latent_image_ids(int64_t packed_height, int64_t packed_width) {
  Tensor ids = Tensor::zeros({packed_height * packed_width, 3}, DType::F32);
  float* p = ids.data<float>();
  for (int64_t y = 0; y < packed_height; ++y)
    for (int64_t x = 0; x < packed_width; ++x) {
      p[(y * packed_width + x) * 3 + 1] = static_cast<float>(y);
      p[(y * packed_width + x) * 3 + 2] = static_cast<float>(x);
    }
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
