// AutoencoderKLQwenImage's decoder under a model-level placement (accelerate's device_map over
// the VAE, executed across the ranks of a group by models/unit_chain.h, as AutoencoderKL's
// PlacedVaeDecoder): each rank binds only its decoder units, the owner of each run of consecutive
// units computes them and hands the (B, H, W, C) activations on. The units: post_quant_conv,
// decoder.conv_in, decoder.mid_block.resnets.0, decoder.mid_block.attentions.0,
// decoder.mid_block.resnets.1, every decoder.up_blocks.i.resnets.j and
// decoder.up_blocks.i.upsamplers.0 (with its unused time_conv), decoder.norm_out (with the SiLU)
// and decoder.conv_out (with the clamp to [-1, 1]). A unit on "disk" runs on rank 0, bound from
// the checkpoint just before it runs and freed after. The encoder's and quant_conv's entries of
// the map are accepted and not loaded. The class declares no no-split modules, so accelerate's
// strategy maps split residual blocks: such a map is refused naming the unit (explicit maps run).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "paradiff/models/unit_placement.h"
#include "paradiff/models/vae_qwen_image/qwen_image_vae_config.h"

namespace paradiff::models::vae_qwen_image {

class PlacedQwenImageVaeDecoder {
 public:
  // The decoder's execution units of `config`, in the order decode runs them.
  static std::vector<std::string> execution_units(const AutoencoderKLQwenImageConfig& config);

  // A diffusers vae/ folder; `group` must outlive the decoder. Refused, naming the unit: a map
  // that splits a unit's tensors, a rank outside the group, a tensor no key covers.
  static PlacedQwenImageVaeDecoder from_pretrained(const std::string& folder,
                                                   const parallel::DeviceMap& map,
                                                   dist::Communicator& group,
                                                   const std::string& variant = {});

  // AutoencoderKLQwenImage::decode (z: (B, z_dim, 1, h, w) or (B, z_dim, h, w), already
  // un-normalised) collective over the group: every rank passes the same z and returns the same
  // images (B, input_channels, H, W), bit for bit those of one process.
  Tensor decode(const Tensor& z) const;

  // AutoencoderKLQwenImage::unnormalize_latents.
  Tensor unnormalize_latents(const Tensor& latents) const;

  // Bytes of the parameters this rank bound (all F32).
  int64_t parameter_bytes() const { return parameter_bytes_; }
  const UnitPlacement& placement() const { return *placement_; }

  struct Unit;  // one execution unit's layers (defined in the .cc)

 private:
  PlacedQwenImageVaeDecoder() = default;

  AutoencoderKLQwenImageConfig config_;
  std::shared_ptr<const UnitPlacement> placement_;
  std::vector<std::shared_ptr<const Unit>> units_;  // null where another rank (or disk) has it
  std::shared_ptr<const WeightSource> disk_source_;
  int64_t parameter_bytes_ = 0;
};

}  // namespace paradiff::models::vae_qwen_image
