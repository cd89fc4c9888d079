// What a level body may use, included at global scope by each generated variant file before it
// includes the body inside its level's namespace (cmake/KernelIsa.cmake, paradiff_isa_kernel).
// A body therefore #includes nothing but other level bodies (row_io.h, vec_math.h), and calls no
// inline function of ours from outside its namespace: the linker would keep one level's copy.
#pragma once

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "paradiff/core/cpu_isa.h"
#include "paradiff/core/dtype.h"

// Lets row_io.h and vec_math.h check that they are compiled as level bodies.
#define PARADIFF_ISA_BODY 1
