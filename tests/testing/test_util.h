// The test harness: fresh random inputs (seed printed, repeatable with PARADIFF_TEST_SEED),
// conversion to double for naive references, and the error measures every test uses.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "paradiff/core/tensor.h"

namespace paradiff::testing {

// The seed of this test process: $PARADIFF_TEST_SEED if set, otherwise fresh each run. Printed
// once to stderr so that a failure can be repeated.
uint64_t test_seed();
// A generator for one test, derived from test_seed() and the current test's name.
std::mt19937_64 make_rng();

// Uniform in [lo, hi), rounded to the tensor's dtype.
Tensor random_uniform(const Shape& shape, DType dtype, std::mt19937_64& rng, float lo = -1.0f,
                      float hi = 1.0f);
// Normal(0, stddev), rounded to the tensor's dtype.
Tensor random_normal(const Shape& shape, DType dtype, std::mt19937_64& rng, float stddev = 1.0f);

// Every element as a double (floating dtypes and i64).
std::vector<double> to_doubles(const Tensor& t);
Tensor from_doubles(const std::vector<double>& values, const Shape& shape, DType dtype);

// ||out - ref|| / ||ref|| in double; +inf if out holds a NaN or inf anywhere, so non-finite
// output never passes a tolerance check.
double relative_error(const Tensor& out, const std::vector<double>& ref);
double relative_error(const Tensor& out, const Tensor& ref);
double max_abs_error(const Tensor& out, const std::vector<double>& ref);
bool all_finite(const Tensor& t);

// Absolute path of a file in the source tree (fixtures).
std::string source_path(const std::string& relative);

}  // namespace paradiff::testing
