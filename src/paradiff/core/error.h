// One exception type for everything a user can get wrong: bad files, bad configs, wrong shapes.
// Messages carry context (which file, which tensor, which value); the engine never aborts on
// user input.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace paradiff {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Concatenates anything streamable into one string: str_cat("expected ", 3, " dims").
template <typename... Args>
std::string str_cat(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}

// Adds a context prefix to an error message as it propagates ("model.safetensors: ...").
[[noreturn]] void rethrow_with_context(const std::string& context);

}  // namespace paradiff

// Checks a condition on user-controlled data; throws paradiff::Error with the message parts.
#define PARADIFF_CHECK(cond, ...)                                \
  do {                                                           \
    if (!(cond)) [[unlikely]]                                    \
      throw ::paradiff::Error(::paradiff::str_cat(__VA_ARGS__)); \
  } while (0)

// Internal invariant (a bug if it fails, not a user error). Kept in Release builds with
// PARADIFF_ASSERTIONS; throws so that tests and MPI jobs report it instead of dumping core.
#ifndef NDEBUG
#define PARADIFF_ASSERT(cond)                                                                \
  do {                                                                                       \
    if (!(cond)) [[unlikely]]                                                                \
      throw ::paradiff::Error(::paradiff::str_cat("internal error: assertion `", #cond,      \
                                                  "` failed at ", __FILE__, ":", __LINE__)); \
  } while (0)
#else
#define PARADIFF_ASSERT(cond) \
  do {                        \
  } while (0)
#endif
