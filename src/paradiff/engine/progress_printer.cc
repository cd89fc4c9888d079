#include "paradiff/engine/progress_printer.h"

#include <unistd.h>

#include <cstdio>

namespace paradiff::engine {

ProgressCallback progress_printer() {
  const bool tty = isatty(fileno(stderr)) != 0;
  return [tty](const pipeline::StepProgress& p, const std::vector<int64_t>& prompts) {
    const std::string label = prompts.front() == prompts.back()
                                  ? str_cat("prompt ", prompts[0])
                                  : str_cat("prompts ", prompts.front(), "-", prompts.back());
    const double per = p.elapsed_seconds / p.step;
    std::fprintf(stderr, "%s%s: step %lld/%lld  %.2f s/it  elapsed %.1f s  ETA %.1f s%s",
                 tty ? "\r" : "", label.c_str(), static_cast<long long>(p.step),
                 static_cast<long long>(p.steps), per, p.elapsed_seconds, per * (p.steps - p.step),
                 tty && p.step < p.steps ? " " : "\n");
    return true;
  };
}

}  // namespace paradiff::engine
