// ComponentCache: a pipeline's loaded components (text encoders, tokenizers, transformer, VAE),
// each loaded once per process on first use and kept for the next prompt or request. Whether a
// component stays loaded after its stage is a policy: KeepLoaded serves many requests (the
// server, the Python package); ReleaseAfterStage frees each stage's components when the stage
// ends, so a one-shot run holds one stage's weights at a time (the reference's staged
// workflow). Placement will drive this per rank.
#pragma once

#include <any>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace paradiff::pipeline {

class ComponentCache {
 public:
  enum class Policy { KeepLoaded, ReleaseAfterStage };

  explicit ComponentCache(Policy policy = Policy::KeepLoaded) : policy_(policy) {}

  // Runs each load of a component (`load` builds it and keeps the result); without one, loads
  // run as they are. The engine installs one that gives the ranks of a host one copy of the
  // transformer's weights (dist/host_weights.h).
  using LoadHook = std::function<void(const std::string& name, const std::function<void()>& load)>;
  void set_load_hook(LoadHook hook) { hook_ = std::move(hook); }

  Policy policy() const { return policy_; }
  void set_policy(Policy policy) { policy_ = policy; }

  // The component `name`, loading it with `load` the first time (or after a release).
  template <class T>
  std::shared_ptr<T> get(const std::string& name, const std::function<T()>& load) {
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      std::shared_ptr<T> loaded;
      const std::function<void()> build = [&] { loaded = std::make_shared<T>(load()); };
      if (hook_)
        hook_(name, build);
      else
        build();
      ++load_counts_[name];
      it = entries_.emplace(name, Entry{loaded}).first;
    }
    return std::any_cast<std::shared_ptr<T>>(it->second.object);
  }

  // A stage that used `names` has ended: frees them under ReleaseAfterStage.
  void end_stage(const std::vector<std::string>& names);
  void release(const std::string& name);
  void release_all();

  bool is_loaded(const std::string& name) const { return entries_.count(name) != 0; }
  std::vector<std::string> loaded() const;
  // How many times `name` was loaded in this cache's life (1 when it was never freed).
  int load_count(const std::string& name) const;

 private:
  struct Entry {
    std::any object;  // std::shared_ptr<T>
  };
  Policy policy_;
  LoadHook hook_;
  std::map<std::string, Entry> entries_;
  std::map<std::string, int> load_counts_;
};

}  // namespace paradiff::pipeline
