// AutoencoderKL's decoder under a model-level placement (accelerate's device_map over the VAE,
// executed across the ranks of a group by models/unit_chain.h, which AutoencoderKLQwenImage's
// placed decoder shares): each rank binds only its decoder units, the owner of each
// run of consecutive units computes them and hands the (B, H, W, C) activations on to the next
// run's owner, and the last owner broadcasts the images. The units are the finest pieces
// accelerate's maps name with AutoencoderKL's no-split ResnetBlock2D: post_quant_conv (when the
// config has it), decoder.conv_in, decoder.mid_block.resnets.0, decoder.mid_block.attentions.0,
// decoder.mid_block.resnets.1, every decoder.up_blocks.i.resnets.j and
// decoder.up_blocks.i.upsamplers.0, decoder.conv_norm_out (with the SiLU of conv_act, which has no
// tensor) and decoder.conv_out. A unit on "disk" runs on rank 0, bound from the checkpoint just
// before it runs (read ahead while the unit before it computes) and freed after. The encoder's
// entries of the map are accepted and not loaded (decoding does not use them).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "paradiff/models/unit_placement.h"
#include "paradiff/models/vae/vae_config.h"

namespace paradiff::models::vae {

class PlacedVaeDecoder {
 public:
  // The decoder's execution units of `config`, in the order decode runs them.
  static std::vector<std::string> execution_units(const AutoencoderKLConfig& config);

  // A diffusers vae/ folder; `group` must outlive the decoder. Refused, naming the unit: a map
  // that splits a unit's tensors, a rank outside the group, a tensor no key covers.
  static PlacedVaeDecoder from_pretrained(const std::string& folder, const parallel::DeviceMap& map,
                                          dist::Communicator& group,
                                          const std::string& variant = {});

  // AutoencoderKL::decode (z: (B, latent_channels, h, w), already unscaled) collective over the
  // group: every rank passes the same z and returns the same images, bit for bit those of one
  // process.
  Tensor decode(const Tensor& z) const;

  // latents / scaling_factor + shift_factor, as AutoencoderKL::unscale_latents.
  Tensor unscale_latents(const Tensor& latents) const;

  // Bytes of the parameters this rank bound (all F32).
  int64_t parameter_bytes() const { return parameter_bytes_; }
  const UnitPlacement& placement() const { return *placement_; }

  struct Unit;  // one execution unit's layers (defined in the .cc)

 private:
  PlacedVaeDecoder() = default;

  AutoencoderKLConfig config_;
  std::shared_ptr<const UnitPlacement> placement_;
  std::vector<std::shared_ptr<const Unit>> units_;  // null where another rank (or disk) has it
  std::shared_ptr<const WeightSource> disk_source_;
  int64_t parameter_bytes_ = 0;
};

}  // namespace paradiff::models::vae
