// Builds a model's module tree as placement sees it (parallel::ModuleTree) the way the model's
// Python class creates it: modules in definition order with their class names (so accelerate's
// no-split blocks are recognised), each parameter with its element count from the checkpoint's
// headers. No weights are read. A model's *_module_tree.cc calls it in its __init__ order.
#pragma once

#include <functional>
#include <initializer_list>
#include <set>
#include <string>
#include <vector>

#include "paradiff/io/checkpoint.h"
#include "paradiff/parallel/placement/module_sizes.h"

namespace paradiff::models {

class ModuleTreeBuilder {
 public:
  // `model_class` names the model in messages; every (floating) parameter counts as
  // `as_created`, the dtype the meta model is built in. `checkpoint_name` gives a tensor's name
  // in the checkpoint from the model's (CLIP's "text_model." prefix, Qwen2.5-VL's older layout);
  // none: the same. The tree's names are the model's.
  using NameMap = std::function<std::string(const std::string&)>;
  ModuleTreeBuilder(const Checkpoint& checkpoint, std::string model_class,
                    SafetensorsDType as_created, NameMap checkpoint_name = {});

  // A module without parameters of its own.
  void module(const std::string& name, const std::string& class_name);
  // A module with parameters `locals` ("weight", "bias"), each required in the checkpoint.
  void with_params(const std::string& name, const std::string& class_name,
                   std::initializer_list<const char*> locals);
  void linear(const std::string& name) { with_params(name, "Linear", {"weight", "bias"}); }
  void rms_norm(const std::string& name) { with_params(name, "RMSNorm", {"weight"}); }
  // A module whose parameter `local` is one tensor with `twin` (a full name defined earlier):
  // torch ties them (find_tied_parameters lists the pair), so only the first counts. The
  // checkpoint may hold this name or only its twin.
  void tied_param(const std::string& name, const std::string& class_name, const std::string& local,
                  const std::string& twin);
  // A checkpoint tensor (by its name in the checkpoint) the model ignores on load (a full T5
  // checkpoint's decoder).
  void ignore(const std::string& checkpoint_name) { used_.insert(checkpoint_name); }
  // A tensor the model has and the checkpoint need not (a non-persistent buffer, such as CLIP's
  // position_ids); one the checkpoint does hold is marked used.
  void buffer(const std::string& full_name, int64_t numel, SafetensorsDType dtype,
              parallel::TensorKind kind);
  // diffusers' TimestepEmbedding (linear_1, SiLU, linear_2).
  void timestep_embedding(const std::string& name);
  // diffusers' FeedForward with a tanh-GELU projection (net.0.proj, Dropout, net.2).
  void feed_forward(const std::string& name);

  // The tree, with `no_split` classes; throws naming a checkpoint tensor no module defined.
  parallel::ModuleTree finish(std::initializer_list<const char*> no_split);

 private:
  const Checkpoint& checkpoint_;
  std::string model_class_;
  SafetensorsDType as_created_;
  std::string stored(const std::string& full) const {
    return checkpoint_name_ ? checkpoint_name_(full) : full;
  }
  NameMap checkpoint_name_;
  parallel::ModuleTree tree_;
  std::set<std::string> used_;
  std::vector<std::vector<std::string>> tied_;
};

}  // namespace paradiff::models
