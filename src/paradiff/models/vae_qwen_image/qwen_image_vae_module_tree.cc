#include "paradiff/models/vae_qwen_image/qwen_image_vae_module_tree.h"

#include <algorithm>

#include "paradiff/models/module_tree_builder.h"
#include "paradiff/models/weight_source.h"

namespace paradiff::models::vae_qwen_image {

namespace {

void causal_conv(ModuleTreeBuilder& b, const std::string& name) {
  b.with_params(name, "QwenImageCausalConv3d", {"weight", "bias"});
}

void rms_norm(ModuleTreeBuilder& b, const std::string& name) {
  b.with_params(name, "QwenImageRMS_norm", {"gamma"});
}

void residual(ModuleTreeBuilder& b, const std::string& p, int64_t in, int64_t out) {
  b.module(p, "QwenImageResidualBlock");
  b.module(p + ".nonlinearity", "SiLU");
  rms_norm(b, p + ".norm1");
  causal_conv(b, p + ".conv1");
  rms_norm(b, p + ".norm2");
  b.module(p + ".dropout", "Dropout");
  causal_conv(b, p + ".conv2");
  if (in != out)
    causal_conv(b, p + ".conv_shortcut");
  else
    b.module(p + ".conv_shortcut", "Identity");
}

void attention(ModuleTreeBuilder& b, const std::string& p) {
  b.module(p, "QwenImageAttentionBlock");
  rms_norm(b, p + ".norm");
  b.with_params(p + ".to_qkv", "Conv2d", {"weight", "bias"});
  b.with_params(p + ".proj", "Conv2d", {"weight", "bias"});
}

// QwenImageResample: its Sequential (resize then Conv2d), then the "3d" modes' time_conv.
void resample(ModuleTreeBuilder& b, const std::string& p, bool up, bool temporal) {
  b.module(p, "QwenImageResample");
  b.module(p + ".resample", "Sequential");
  b.module(p + ".resample.0", up ? "QwenImageUpsample" : "ZeroPad2d");
  b.with_params(p + ".resample.1", "Conv2d", {"weight", "bias"});
  if (temporal) causal_conv(b, p + ".time_conv");
}

// QwenImageMidBlock with one layer: attentions are defined before resnets.
void mid_block(ModuleTreeBuilder& b, const std::string& p, int64_t dim) {
  b.module(p, "QwenImageMidBlock");
  b.module(p + ".attentions", "ModuleList");
  attention(b, p + ".attentions.0");
  b.module(p + ".resnets", "ModuleList");
  residual(b, p + ".resnets.0", dim, dim);
  residual(b, p + ".resnets.1", dim, dim);
}

}  // namespace

parallel::ModuleTree autoencoder_kl_qwen_image_module_tree(const AutoencoderKLQwenImageConfig& c,
                                                           const Checkpoint& checkpoint,
                                                           SafetensorsDType as_created) {
  ModuleTreeBuilder b(checkpoint, "AutoencoderKLQwenImage", as_created);
  const int64_t stages = static_cast<int64_t>(c.dim_mult.size());
  b.module("", "AutoencoderKLQwenImage");

  b.module("encoder", "QwenImageEncoder3d");
  b.module("encoder.nonlinearity", "SiLU");
  causal_conv(b, "encoder.conv_in");
  b.module("encoder.down_blocks", "ModuleList");
  {
    const auto dims = c.encoder_dims();
    int64_t index = 0;
    double scale = 1.0;
    for (int64_t i = 0; i < stages; ++i) {
      int64_t in = dims[i];
      const int64_t out = dims[i + 1];
      const bool with_attention =
          std::find(c.attn_scales.begin(), c.attn_scales.end(), scale) != c.attn_scales.end();
      for (int64_t r = 0; r < c.num_res_blocks; ++r) {
        residual(b, str_cat("encoder.down_blocks.", index++), in, out);
        if (with_attention) attention(b, str_cat("encoder.down_blocks.", index++));
        in = out;
      }
      if (i != stages - 1) {
        resample(b, str_cat("encoder.down_blocks.", index++), /*up=*/false,
                 c.temperal_downsample[static_cast<size_t>(i)]);
        scale /= 2.0;
      }
    }
    mid_block(b, "encoder.mid_block", dims.back());
  }
  rms_norm(b, "encoder.norm_out");
  causal_conv(b, "encoder.conv_out");
  causal_conv(b, "quant_conv");
  causal_conv(b, "post_quant_conv");

  b.module("decoder", "QwenImageDecoder3d");
  b.module("decoder.nonlinearity", "SiLU");
  causal_conv(b, "decoder.conv_in");
  const auto dims = c.decoder_dims();
  mid_block(b, "decoder.mid_block", dims[0]);
  b.module("decoder.up_blocks", "ModuleList");
  for (int64_t i = 0; i < stages; ++i) {
    const std::string p = str_cat("decoder.up_blocks.", i);
    const int64_t out = dims[i + 1];
    int64_t in = i > 0 ? dims[i] / 2 : dims[i];
    b.module(p, "QwenImageUpBlock");
    b.module(p + ".resnets", "ModuleList");
    for (int64_t j = 0; j <= c.num_res_blocks; ++j) {
      residual(b, str_cat(p, ".resnets.", j), in, out);
      in = out;
    }
    if (i != stages - 1) {
      // The decoder's temporal flags are the encoder's reversed.
      const bool temporal =
          c.temperal_downsample[c.temperal_downsample.size() - 1 - static_cast<size_t>(i)];
      b.module(p + ".upsamplers", "ModuleList");
      resample(b, p + ".upsamplers.0", /*up=*/true, temporal);
    }
  }
  rms_norm(b, "decoder.norm_out");
  causal_conv(b, "decoder.conv_out");
  return b.finish({});
}

parallel::ModuleTree autoencoder_kl_qwen_image_module_tree(const std::string& folder,
                                                           const std::string& variant) {
  const auto config = AutoencoderKLQwenImageConfig::load(model_config_path(folder, "vae folder"));
  return autoencoder_kl_qwen_image_module_tree(
      config, Checkpoint::open_folder(folder, "diffusion_pytorch_model", variant));
}

}  // namespace paradiff::models::vae_qwen_image
