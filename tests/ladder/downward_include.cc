// Compiled by ctest with the models rung's include path: must succeed (core/ is below models/),
// so that the upward-include test fails for the right reason.
#include "paradiff/core/tensor.h"
