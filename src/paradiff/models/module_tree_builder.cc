#include "paradiff/models/module_tree_builder.h"

#include <algorithm>

#include "paradiff/core/error.h"

namespace paradiff::models {

ModuleTreeBuilder::ModuleTreeBuilder(const Checkpoint& checkpoint, std::string model_class,
                                     SafetensorsDType as_created, NameMap checkpoint_name)
    : checkpoint_(checkpoint),
      model_class_(std::move(model_class)),
      as_created_(as_created),
      checkpoint_name_(std::move(checkpoint_name)) {}

void ModuleTreeBuilder::buffer(const std::string& full_name, int64_t numel, SafetensorsDType dtype,
                               parallel::TensorKind kind) {
  tree_.add_tensor(full_name, numel, dtype, kind);
  if (checkpoint_.contains(stored(full_name))) used_.insert(stored(full_name));
}

void ModuleTreeBuilder::module(const std::string& name, const std::string& class_name) {
  tree_.add_module(name, class_name);
}

void ModuleTreeBuilder::with_params(const std::string& name, const std::string& class_name,
                                    std::initializer_list<const char*> locals) {
  module(name, class_name);
  for (const char* local : locals) {
    const std::string full = name + "." + local;
    PARADIFF_CHECK(checkpoint_.contains(stored(full)), checkpoint_.path(), ": tensor '",
                   stored(full), "' is missing (", model_class_, " defines it)");
    tree_.add_tensor(full, checkpoint_.info(stored(full)).numel, as_created_);
    used_.insert(stored(full));
  }
}

void ModuleTreeBuilder::tied_param(const std::string& name, const std::string& class_name,
                                   const std::string& local, const std::string& twin) {
  module(name, class_name);
  const std::string full = name + "." + local;
  PARADIFF_CHECK(checkpoint_.contains(stored(full)) || checkpoint_.contains(stored(twin)),
                 checkpoint_.path(), ": tensor '", stored(twin), "' (tied to '", full,
                 "') is missing (", model_class_, " defines it)");
  const std::string held = stored(checkpoint_.contains(stored(full)) ? full : twin);
  tree_.add_tensor(full, checkpoint_.info(held).numel, as_created_);
  used_.insert(held);
  std::vector<std::string> group{full, twin};
  std::sort(group.begin(), group.end());
  if (std::find(tied_.begin(), tied_.end(), group) == tied_.end())
    tied_.push_back(std::move(group));
}

void ModuleTreeBuilder::timestep_embedding(const std::string& name) {
  module(name, "TimestepEmbedding");
  linear(name + ".linear_1");
  module(name + ".act", "SiLU");
  linear(name + ".linear_2");
}

void ModuleTreeBuilder::feed_forward(const std::string& name) {
  module(name, "FeedForward");
  module(name + ".net", "ModuleList");
  module(name + ".net.0", "GELU");
  linear(name + ".net.0.proj");
  module(name + ".net.1", "Dropout");
  linear(name + ".net.2");
}

parallel::ModuleTree ModuleTreeBuilder::finish(std::initializer_list<const char*> no_split) {
  for (const std::string& name : checkpoint_.names())
    PARADIFF_CHECK(used_.count(name) != 0, checkpoint_.path(), ": tensor '", name,
                   "' belongs to no module of ", model_class_);
  std::vector<std::string> classes(no_split.begin(), no_split.end());
  tree_.set_no_split(classes);
  if (!tied_.empty()) tree_.set_tied(tied_);
  return std::move(tree_);
}

}  // namespace paradiff::models
