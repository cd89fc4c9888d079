#include "paradiff/pipeline/component_cache.h"

namespace paradiff::pipeline {

void ComponentCache::end_stage(const std::vector<std::string>& names) {
  if (policy_ != Policy::ReleaseAfterStage) return;
  for (const auto& name : names) release(name);
}

void ComponentCache::release(const std::string& name) {
  entries_.erase(name);
}

void ComponentCache::release_all() {
  entries_.clear();
}

std::vector<std::string> ComponentCache::loaded() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : entries_) out.push_back(name);
  return out;
}

int ComponentCache::load_count(const std::string& name) const {
  const auto it = load_counts_.find(name);
  return it == load_counts_.end() ? 0 : it->second;
}

}  // namespace paradiff::pipeline
