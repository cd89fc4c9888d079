// An environment variable changed for one scope of a test and restored when the scope ends.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace paradiff::testing {

class ScopedEnv {
 public:
  // Sets `name` to `value`, or unsets it where value is null.
  ScopedEnv(std::string name, const char* value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) saved_ = old;
    set(value);
  }
  ~ScopedEnv() { set(saved_ ? saved_->c_str() : nullptr); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

  void set(const char* value) const {
    if (value != nullptr)
      ::setenv(name_.c_str(), value, 1);
    else
      ::unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> saved_;
};

}  // namespace paradiff::testing
