#include "paradiff/models/vae/vae_module_tree.h"

#include "paradiff/io/json_config.h"
#include "paradiff/models/module_tree_builder.h"
#include "paradiff/models/weight_source.h"

namespace paradiff::models::vae {

namespace {

void conv(ModuleTreeBuilder& b, const std::string& name) {
  b.with_params(name, "Conv2d", {"weight", "bias"});
}

void group_norm(ModuleTreeBuilder& b, const std::string& name) {
  b.with_params(name, "GroupNorm", {"weight", "bias"});
}

void resnet(ModuleTreeBuilder& b, const std::string& p, bool shortcut) {
  b.module(p, "ResnetBlock2D");
  group_norm(b, p + ".norm1");
  conv(b, p + ".conv1");
  group_norm(b, p + ".norm2");
  b.module(p + ".dropout", "Dropout");
  conv(b, p + ".conv2");
  b.module(p + ".nonlinearity", "SiLU");
  if (shortcut) conv(b, p + ".conv_shortcut");
}

// UNetMidBlock2D: its attentions list is defined before its resnets.
void mid_block(ModuleTreeBuilder& b, const std::string& p, bool attention) {
  b.module(p, "UNetMidBlock2D");
  b.module(p + ".attentions", "ModuleList");
  if (attention) {
    const std::string a = p + ".attentions.0";
    b.module(a, "Attention");
    group_norm(b, a + ".group_norm");
    b.linear(a + ".to_q");
    b.linear(a + ".to_k");
    b.linear(a + ".to_v");
    b.module(a + ".to_out", "ModuleList");
    b.linear(a + ".to_out.0");
    b.module(a + ".to_out.1", "Dropout");
  }
  b.module(p + ".resnets", "ModuleList");
  resnet(b, p + ".resnets.0", false);
  resnet(b, p + ".resnets.1", false);
}

}  // namespace

parallel::ModuleTree autoencoder_kl_module_tree(const AutoencoderKLConfig& c,
                                                const Checkpoint& checkpoint,
                                                SafetensorsDType as_created) {
  ModuleTreeBuilder b(checkpoint, "AutoencoderKL", as_created);
  const auto& ch = c.block_out_channels;
  const int64_t blocks = static_cast<int64_t>(ch.size());
  b.module("", "AutoencoderKL");

  b.module("encoder", "Encoder");
  conv(b, "encoder.conv_in");
  b.module("encoder.down_blocks", "ModuleList");
  for (int64_t i = 0; i < blocks; ++i) {
    const std::string p = str_cat("encoder.down_blocks.", i);
    b.module(p, "DownEncoderBlock2D");
    b.module(p + ".resnets", "ModuleList");
    for (int64_t j = 0; j < c.layers_per_block; ++j)
      resnet(b, str_cat(p, ".resnets.", j), j == 0 && ch[i] != ch[i == 0 ? 0 : i - 1]);
    if (i != blocks - 1) {
      b.module(p + ".downsamplers", "ModuleList");
      b.module(p + ".downsamplers.0", "Downsample2D");
      conv(b, p + ".downsamplers.0.conv");
    }
  }
  mid_block(b, "encoder.mid_block", c.mid_block_add_attention);
  group_norm(b, "encoder.conv_norm_out");
  b.module("encoder.conv_act", "SiLU");
  conv(b, "encoder.conv_out");

  b.module("decoder", "Decoder");
  conv(b, "decoder.conv_in");
  b.module("decoder.up_blocks", "ModuleList");
  int64_t prev = ch.back();
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t width = ch[blocks - 1 - i];
    const std::string p = str_cat("decoder.up_blocks.", i);
    b.module(p, "UpDecoderBlock2D");
    b.module(p + ".resnets", "ModuleList");
    for (int64_t j = 0; j <= c.layers_per_block; ++j)
      resnet(b, str_cat(p, ".resnets.", j), j == 0 && prev != width);
    if (i != blocks - 1) {
      b.module(p + ".upsamplers", "ModuleList");
      b.module(p + ".upsamplers.0", "Upsample2D");
      conv(b, p + ".upsamplers.0.conv");
    }
    prev = width;
  }
  mid_block(b, "decoder.mid_block", c.mid_block_add_attention);
  group_norm(b, "decoder.conv_norm_out");
  b.module("decoder.conv_act", "SiLU");
  conv(b, "decoder.conv_out");

  if (c.use_quant_conv) conv(b, "quant_conv");
  if (c.use_post_quant_conv) conv(b, "post_quant_conv");
  return b.finish({"BasicTransformerBlock", "ResnetBlock2D"});
}

parallel::ModuleTree autoencoder_kl_module_tree(const std::string& folder,
                                                const std::string& variant) {
  const auto config =
      AutoencoderKLConfig::from_json(JsonConfig::load(model_config_path(folder, "vae folder")));
  return autoencoder_kl_module_tree(
      config, Checkpoint::open_folder(folder, "diffusion_pytorch_model", variant));
}

}  // namespace paradiff::models::vae
