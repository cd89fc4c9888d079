// Linked into every rung's test binary (tests/CMakeLists.txt): when PARADIFF_MAX_ISA asks for a
// level this machine lacks (ctest runs the kernel tests once per level), every test is reported
// as skipped, rather than run at the lower level the kernels would fall back to.
#include <gtest/gtest.h>

#include <string>

#include "paradiff/core/cpu_isa.h"

namespace paradiff::testing {
namespace {

class IsaCapEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const auto cap = cpu_isa_cap();
    if (cap && *cap > hardware_cpu_isa())
      GTEST_SKIP() << "PARADIFF_MAX_ISA=" << cpu_isa_name(*cap) << " is above this CPU's "
                   << cpu_isa_name(hardware_cpu_isa()) << ": the level cannot be tested here";
  }
};

[[maybe_unused]] ::testing::Environment* const isa_cap_environment =
    ::testing::AddGlobalTestEnvironment(new IsaCapEnvironment);

}  // namespace
}  // namespace paradiff::testing
