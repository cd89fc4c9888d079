// Named tensors that a model binds its parameters from. A checkpoint in diffusers naming is one
// source; a checkpoint in another layout (Black Forest Labs' single file) is another that
// presents the same diffusers names, so models bind weights one way only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "paradiff/core/tensor.h"
#include "paradiff/io/checkpoint.h"

namespace paradiff::models {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // Names the source in messages ("transformer/diffusion_pytorch_model.safetensors").
  virtual std::string describe() const = 0;
  // Every tensor name the source offers, in the naming models bind with.
  virtual std::vector<std::string> names() const = 0;
  virtual bool contains(const std::string& name) const = 0;
  virtual std::vector<int64_t> shape(const std::string& name) const = 0;
  virtual Tensor read(const std::string& name, DType want) const = 0;
  // The stored element type ("F32", "BF16", "I64"), so that a parameter stored as integers is
  // refused rather than converted; empty where the source cannot say (a derived tensor).
  virtual std::string stored_dtype(const std::string& /*name*/) const { return {}; }
};

// A checkpoint (single or sharded safetensors) whose names are used as they are.
class CheckpointWeights : public WeightSource {
 public:
  explicit CheckpointWeights(Checkpoint checkpoint) : checkpoint_(std::move(checkpoint)) {}
  std::string describe() const override { return checkpoint_.path(); }
  std::vector<std::string> names() const override { return checkpoint_.names(); }
  bool contains(const std::string& name) const override { return checkpoint_.contains(name); }
  std::vector<int64_t> shape(const std::string& name) const override {
    return checkpoint_.info(name).shape;
  }
  Tensor read(const std::string& name, DType want) const override {
    return checkpoint_.read(name, want);
  }
  std::string stored_dtype(const std::string& name) const override {
    return std::string(safetensors_dtype_name(checkpoint_.info(name).dtype));
  }
  const Checkpoint& checkpoint() const { return checkpoint_; }

 private:
  Checkpoint checkpoint_;
};

// A weight source without some of its names (a VAE's unloaded half, T5's decoder, a VLM's
// vision tower), which the model then neither binds nor reports as unused.
class IgnoringWeights : public WeightSource {
 public:
  IgnoringWeights(const WeightSource& base, std::function<bool(const std::string&)> ignore)
      : base_(base), ignore_(std::move(ignore)) {}
  std::string describe() const override { return base_.describe(); }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (std::string& n : base_.names())
      if (!ignore_(n)) out.push_back(std::move(n));
    return out;
  }
  bool contains(const std::string& name) const override {
    return !ignore_(name) && base_.contains(name);
  }
  std::vector<int64_t> shape(const std::string& name) const override { return base_.shape(name); }
  Tensor read(const std::string& name, DType want) const override { return base_.read(name, want); }
  std::string stored_dtype(const std::string& name) const override {
    return base_.stored_dtype(name);
  }

 private:
  const WeightSource& base_;
  std::function<bool(const std::string&)> ignore_;
};

// A diffusers or transformers model folder's config.json, after checking that the folder and the
// file exist; `what` names the folder's role in messages ("transformer folder").
std::string model_config_path(const std::string& folder, const std::string& what);

}  // namespace paradiff::models
