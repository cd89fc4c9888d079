// The progress line every front-end prints while a generation denoises (the CLI, the Python
// package's progress bar): rewritten in place on a terminal, a line per step in a log.
#pragma once

#include "paradiff/engine/engine.h"

namespace paradiff::engine {

// "prompt 0: step 3/28  0.41 s/it  elapsed 1.2 s  ETA 10.3 s" on standard error.
ProgressCallback progress_printer();

}  // namespace paradiff::engine
