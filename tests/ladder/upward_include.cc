// Compiled by ctest with the models rung's include path: must fail, since pipeline/ is a rung
// above models/ (see the ladder in CMakeLists.txt).
#include "paradiff/pipeline/diffusion_pipeline.h"
