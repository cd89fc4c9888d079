// Linked into every rung's test binary (tests/CMakeLists.txt): when PARADIFF_MAX_ISA asks for a
// level this machine lacks (ctest runs the kernel tests once per level), the binary exits with
// status 77 before any test runs, which ctest reports as skipped (SKIP_RETURN_CODE 77), rather
// than running the tests at the lower level the kernels would fall back to. (GTEST_SKIP in a
// global environment would report the tests as passed.)
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "paradiff/core/cpu_isa.h"

namespace paradiff::testing {
namespace {

constexpr int kSkipStatus = 77;

// PARADIFF_TEST_ISA=<level>[/<bf16 arithmetic>] (set by tests/CMakeLists.txt, which can give a
// discovered test one environment variable only) becomes PARADIFF_MAX_ISA=<level> and
// PARADIFF_BF16_ARITHMETIC=<bf16 arithmetic>.
void expand_test_isa() {
  const char* value = std::getenv("PARADIFF_TEST_ISA");
  if (value == nullptr || *value == '\0') return;
  const std::string run = value;
  const size_t slash = run.find('/');
  setenv("PARADIFF_MAX_ISA", run.substr(0, slash).c_str(), 1);
  if (slash != std::string::npos)
    setenv("PARADIFF_BF16_ARITHMETIC", run.substr(slash + 1).c_str(), 1);
}

class IsaCapEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const auto cap = cpu_isa_cap();
    if (!cap || *cap <= hardware_cpu_isa()) return;
    std::printf(
        "[  SKIPPED ] PARADIFF_MAX_ISA=%s is above this CPU's level (%s): not tested here\n",
        std::string(cpu_isa_name(*cap)).c_str(),
        std::string(cpu_isa_name(hardware_cpu_isa())).c_str());
    std::fflush(stdout);
    std::exit(kSkipStatus);
  }
};

// Expanded while the program starts, before main registers any test (a parameter generator may
// ask for the active level).
[[maybe_unused]] ::testing::Environment* const isa_cap_environment =
    (expand_test_isa(), ::testing::AddGlobalTestEnvironment(new IsaCapEnvironment));

}  // namespace
}  // namespace paradiff::testing
