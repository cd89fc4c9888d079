#include "paradiff/models/vae/placed_vae_decoder.h"

#include <optional>

#include "paradiff/kernels/channels_last.h"
#include "paradiff/kernels/group_norm.h"
#include "paradiff/kernels/pointwise.h"
#include "paradiff/models/unit_chain.h"
#include "paradiff/models/vae/autoencoder_kl.h"
#include "paradiff/models/vae/vae_blocks.h"

namespace paradiff::models::vae {

namespace {

using kernels::Padding2d;

enum class Kind { Conv1x1, Conv3x3, Resnet, Attention, Upsample, NormSilu };

struct UnitSpec {
  std::string name;
  Kind kind;
  int64_t in = 0, out = 0;
};

// The decoder's units with their shapes, as AutoencoderKL's Decoder builds them.
std::vector<UnitSpec> unit_specs(const AutoencoderKLConfig& c) {
  const auto& ch = c.block_out_channels;
  const int64_t top = ch.back(), lc = c.latent_channels;
  std::vector<UnitSpec> out;
  if (c.use_post_quant_conv) out.push_back({"post_quant_conv", Kind::Conv1x1, lc, lc});
  out.push_back({"decoder.conv_in", Kind::Conv3x3, lc, top});
  out.push_back({"decoder.mid_block.resnets.0", Kind::Resnet, top, top});
  if (c.mid_block_add_attention)
    out.push_back({"decoder.mid_block.attentions.0", Kind::Attention, top, top});
  out.push_back({"decoder.mid_block.resnets.1", Kind::Resnet, top, top});
  int64_t prev = top;
  const int64_t blocks = static_cast<int64_t>(ch.size());
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t width = ch[blocks - 1 - i];
    for (int64_t j = 0; j <= c.layers_per_block; ++j)
      out.push_back({str_cat("decoder.up_blocks.", i, ".resnets.", j), Kind::Resnet,
                     j == 0 ? prev : width, width});
    if (i != blocks - 1)
      out.push_back(
          {str_cat("decoder.up_blocks.", i, ".upsamplers.0"), Kind::Upsample, width, width});
    prev = width;
  }
  out.push_back({"decoder.conv_norm_out", Kind::NormSilu, ch.front(), ch.front()});
  out.push_back({"decoder.conv_out", Kind::Conv3x3, ch.front(), c.out_channels});
  return out;
}

}  // namespace

struct PlacedVaeDecoder::Unit {
  Kind kind;
  std::optional<kernels::Conv2d> conv;
  std::optional<ResnetBlock2D> resnet;
  std::optional<VaeAttention> attention;
  std::optional<Upsample2D> upsampler;
  GroupNormParams norm;

  Unit(ModuleLoader& loader, const UnitSpec& s, int64_t groups) : kind(s.kind) {
    switch (s.kind) {
      case Kind::Conv1x1:
        conv = load_conv(loader, s.name, s.in, s.out, 1, 1, Padding2d{});
        break;
      case Kind::Conv3x3:
        conv = load_conv(loader, s.name, s.in, s.out, 3, 1, Padding2d::same(1));
        break;
      case Kind::Resnet:
        resnet.emplace(loader, s.name, s.in, s.out, groups);
        break;
      case Kind::Attention:
        attention.emplace(loader, s.name, s.in, groups);
        break;
      case Kind::Upsample:
        upsampler.emplace(loader, s.name, s.in);
        break;
      case Kind::NormSilu:
        norm = load_group_norm(loader, s.name, s.in, groups);
        break;
    }
  }

  // Channels-last in and out, the same kernels in the same order as AutoencoderKL's decoder.
  Tensor forward(Tensor h) const {
    switch (kind) {
      case Kind::Conv1x1:
      case Kind::Conv3x3:
        return conv->forward(h);
      case Kind::Resnet:
        return resnet->forward(std::move(h));
      case Kind::Attention:
        return attention->forward(std::move(h));
      case Kind::Upsample:
        return upsampler->forward(h);
      case Kind::NormSilu:
        kernels::group_norm(h, norm.groups, norm.weight, norm.bias, norm.eps, h, /*silu=*/true);
        return h;
    }
    return h;
  }
};

std::vector<std::string> PlacedVaeDecoder::execution_units(const AutoencoderKLConfig& config) {
  std::vector<std::string> out;
  for (const auto& s : unit_specs(config)) out.push_back(s.name);
  return out;
}

PlacedVaeDecoder PlacedVaeDecoder::from_pretrained(const std::string& folder,
                                                   const parallel::DeviceMap& map,
                                                   dist::Communicator& group,
                                                   const std::string& variant) {
  PlacedVaeDecoder d;
  d.config_ = load_autoencoder_kl_config(folder);
  d.config_.validate("vae config");
  auto weights = std::make_shared<const CheckpointWeights>(
      Checkpoint::open_folder(folder, "diffusion_pytorch_model", variant));
  d.placement_ = std::make_shared<const UnitPlacement>(map, execution_units(d.config_),
                                                       weights->names(), group);
  const auto encoder_side = other_vae_part(VaeParts::DecoderOnly);
  const IgnoringWeights mine(*weights, [p = d.placement_, encoder_side](const std::string& name) {
    return encoder_side(name) || !p->binds_tensor(name);
  });
  ModuleLoader loader(mine, DType::F32);
  for (const UnitSpec& s : unit_specs(d.config_))
    d.units_.push_back(d.placement_->binds(s.name)
                           ? std::make_shared<const Unit>(loader, s, d.config_.norm_num_groups)
                           : nullptr);
  loader.finish();
  d.parameter_bytes_ = loader.bytes_bound();
  d.disk_source_ = std::move(weights);
  return d;
}

Tensor PlacedVaeDecoder::unscale_latents(const Tensor& latents) const {
  return unscale_autoencoder_kl_latents(config_, latents);
}

Tensor PlacedVaeDecoder::decode(const Tensor& z) const {
  constexpr int kActivationTag = 0x5641;  // "VA": decoder activations from one owner to the next
  const auto& lc = config_.latent_channels;
  PARADIFF_CHECK(z.ndim() == 4 && z.dim(1) == lc && is_floating(z.dtype()),
                 "AutoencoderKL.decode: latents must be floating point (B, ", lc, ", h, w), got ",
                 z.describe());
  const std::vector<UnitSpec> specs = unit_specs(config_);
  UnitChainSteps steps;
  steps.run_bound = [&](size_t u, Tensor h) { return units_[u]->forward(std::move(h)); };
  steps.run_streamed = [&](size_t u, ModuleLoader& loader, Tensor h) {
    const Unit streamed(loader, specs[u], config_.norm_num_groups);
    loader.finish();
    return streamed.forward(std::move(h));
  };
  return kernels::nhwc_to_nchw(run_unit_chain(
      *placement_, *disk_source_, steps, kernels::nchw_to_nhwc(z.to(DType::F32)), kActivationTag));
}

}  // namespace paradiff::models::vae
