#include "paradiff/models/vae_qwen_image/placed_qwen_image_vae_decoder.h"

#include <optional>

#include "paradiff/kernels/channels_last.h"
#include "paradiff/kernels/pointwise.h"
#include "paradiff/models/unit_chain.h"
#include "paradiff/models/vae_qwen_image/autoencoder_kl_qwen_image.h"
#include "paradiff/models/vae_qwen_image/qwen_image_vae_blocks.h"

namespace paradiff::models::vae_qwen_image {

namespace {

enum class Kind { Conv1x1, Conv3x3, Residual, Attention, Upsample, NormSilu, ConvOut };

struct UnitSpec {
  std::string name;
  Kind kind;
  int64_t in = 0, out = 0;
  Resample::Mode mode = Resample::Mode::Upsample2d;
};

// The decoder's units with their shapes, as AutoencoderKLQwenImage's decoder builds them.
std::vector<UnitSpec> unit_specs(const AutoencoderKLQwenImageConfig& c) {
  const auto dims = c.decoder_dims();
  const int64_t stages = static_cast<int64_t>(c.dim_mult.size());
  std::vector<UnitSpec> out;
  out.push_back({"post_quant_conv", Kind::Conv1x1, c.z_dim, c.z_dim});
  out.push_back({"decoder.conv_in", Kind::Conv3x3, c.z_dim, dims[0]});
  out.push_back({"decoder.mid_block.resnets.0", Kind::Residual, dims[0], dims[0]});
  out.push_back({"decoder.mid_block.attentions.0", Kind::Attention, dims[0], dims[0]});
  out.push_back({"decoder.mid_block.resnets.1", Kind::Residual, dims[0], dims[0]});
  for (int64_t i = 0; i < stages; ++i) {
    const std::string p = str_cat("decoder.up_blocks.", i);
    int64_t in = i > 0 ? dims[i] / 2 : dims[i];
    const int64_t width = dims[i + 1];
    for (int64_t j = 0; j <= c.num_res_blocks; ++j) {
      out.push_back({str_cat(p, ".resnets.", j), Kind::Residual, in, width});
      in = width;
    }
    if (i != stages - 1) {
      // The decoder's temporal flags are the encoder's reversed.
      const bool temporal =
          c.temperal_downsample[c.temperal_downsample.size() - 1 - static_cast<size_t>(i)];
      out.push_back({p + ".upsamplers.0", Kind::Upsample, width, width,
                     temporal ? Resample::Mode::Upsample3d : Resample::Mode::Upsample2d});
    }
  }
  out.push_back({"decoder.norm_out", Kind::NormSilu, dims.back(), dims.back()});
  out.push_back({"decoder.conv_out", Kind::ConvOut, dims.back(), c.input_channels});
  return out;
}

}  // namespace

struct PlacedQwenImageVaeDecoder::Unit {
  Kind kind;
  std::optional<kernels::Conv2d> conv;
  std::optional<ResidualBlock> residual;
  std::optional<AttentionBlock> attention;
  std::optional<Resample> upsampler;
  RmsNorm norm;

  Unit(ModuleLoader& loader, const UnitSpec& s) : kind(s.kind) {
    switch (s.kind) {
      case Kind::Conv1x1:
        conv = load_causal_conv(loader, s.name, s.in, s.out, 1);
        break;
      case Kind::Conv3x3:
      case Kind::ConvOut:
        conv = load_causal_conv(loader, s.name, s.in, s.out, 3);
        break;
      case Kind::Residual:
        residual.emplace(loader, s.name, s.in, s.out);
        break;
      case Kind::Attention:
        attention.emplace(loader, s.name, s.in);
        break;
      case Kind::Upsample:
        upsampler.emplace(loader, s.name, s.in, s.mode);
        break;
      case Kind::NormSilu:
        norm = RmsNorm(loader, s.name, s.in, /*images=*/false);
        break;
    }
  }

  // Channels-last in and out, the same kernels in the same order as AutoencoderKLQwenImage's
  // decoder.
  Tensor forward(Tensor h) const {
    switch (kind) {
      case Kind::Conv1x1:
      case Kind::Conv3x3:
        return conv->forward(h);
      case Kind::ConvOut: {
        Tensor out = conv->forward(h);
        kernels::clamp(out, -1.0f, 1.0f, out);
        return out;
      }
      case Kind::Residual:
        return residual->forward(std::move(h));
      case Kind::Attention:
        return attention->forward(std::move(h));
      case Kind::Upsample:
        return upsampler->forward(h);
      case Kind::NormSilu:
        norm.forward(h, h, /*silu=*/true);
        return h;
    }
    return h;
  }
};

std::vector<std::string> PlacedQwenImageVaeDecoder::execution_units(
    const AutoencoderKLQwenImageConfig& config) {
  std::vector<std::string> out;
  for (const auto& s : unit_specs(config)) out.push_back(s.name);
  return out;
}

PlacedQwenImageVaeDecoder PlacedQwenImageVaeDecoder::from_pretrained(const std::string& folder,
                                                                     const parallel::DeviceMap& map,
                                                                     dist::Communicator& group,
                                                                     const std::string& variant) {
  PlacedQwenImageVaeDecoder d;
  d.config_ = load_qwen_image_vae_config(folder);
  d.config_.validate("vae config");
  auto weights = std::make_shared<const CheckpointWeights>(
      Checkpoint::open_folder(folder, "diffusion_pytorch_model", variant));
  d.placement_ = std::make_shared<const UnitPlacement>(map, execution_units(d.config_),
                                                       weights->names(), group);
  const auto encoder_side = vae::other_vae_part(VaeParts::DecoderOnly);
  const IgnoringWeights mine(*weights, [p = d.placement_, encoder_side](const std::string& name) {
    return encoder_side(name) || !p->binds_tensor(name);
  });
  ModuleLoader loader(mine, DType::F32);
  for (const UnitSpec& s : unit_specs(d.config_))
    d.units_.push_back(d.placement_->binds(s.name) ? std::make_shared<const Unit>(loader, s)
                                                   : nullptr);
  loader.finish();
  d.parameter_bytes_ = loader.bytes_bound();
  d.disk_source_ = std::move(weights);
  return d;
}

Tensor PlacedQwenImageVaeDecoder::unnormalize_latents(const Tensor& latents) const {
  return unnormalize_qwen_image_latents(config_, latents);
}

Tensor PlacedQwenImageVaeDecoder::decode(const Tensor& z) const {
  constexpr int kActivationTag = 0x5651;  // "VQ": decoder activations from one owner to the next
  const int64_t zc = config_.z_dim;
  const bool ok = z.defined() && is_floating(z.dtype()) && (z.ndim() == 4 || z.ndim() == 5) &&
                  z.dim(1) == zc && (z.ndim() == 4 || z.dim(2) == 1);
  PARADIFF_CHECK(ok, "AutoencoderKLQwenImage.decode: latents must be floating point (B, ", zc,
                 ", 1, h, w) or (B, ", zc, ", h, w), got ",
                 z.defined() ? z.describe() : std::string("nothing"));
  const Tensor frame = z.to(DType::F32).reshape({z.dim(0), zc, z.dim(-2), z.dim(-1)});
  const std::vector<UnitSpec> specs = unit_specs(config_);
  UnitChainSteps steps;
  steps.run_bound = [&](size_t u, Tensor h) { return units_[u]->forward(std::move(h)); };
  steps.run_streamed = [&](size_t u, ModuleLoader& loader, Tensor h) {
    const Unit streamed(loader, specs[u]);
    loader.finish();
    return streamed.forward(std::move(h));
  };
  return kernels::nhwc_to_nchw(run_unit_chain(*placement_, *disk_source_, steps,
                                              kernels::nchw_to_nhwc(frame), kActivationTag));
}

}  // namespace paradiff::models::vae_qwen_image
