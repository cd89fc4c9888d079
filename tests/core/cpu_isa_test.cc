#include "paradiff/core/cpu_isa.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "paradiff/core/error.h"

namespace paradiff {
namespace {

TEST(CpuIsa, NamesRoundTripAndUnknownNamesAreRefused) {
  for (CpuIsa isa :
       {CpuIsa::Portable, CpuIsa::Avx2, CpuIsa::Avx512, CpuIsa::Avx512Bf16, CpuIsa::Amx})
    EXPECT_EQ(parse_cpu_isa(cpu_isa_name(isa)), isa);
  EXPECT_FALSE(parse_cpu_isa("AVX2"));
  EXPECT_FALSE(parse_cpu_isa("avx512bf16"));
  EXPECT_FALSE(parse_cpu_isa(""));
}

// The active level is the hardware's, lowered to PARADIFF_MAX_ISA when ctest sets it (the kernel
// tests run once per level this machine has).
TEST(CpuIsa, ActiveLevelIsTheHardwareLevelLoweredToTheCap) {
  const CpuIsa hardware = hardware_cpu_isa(), active = active_cpu_isa();
  EXPECT_LE(active, hardware);
  const auto cap = cpu_isa_cap();
  if (cap)
    EXPECT_EQ(active, std::min(*cap, hardware));
  else
    EXPECT_EQ(active, hardware);
  EXPECT_EQ(native_bf16(), active >= CpuIsa::Avx512Bf16);
  const std::string summary = cpu_isa_summary();
  EXPECT_EQ(summary.rfind(std::string("isa: ") + std::string(cpu_isa_name(active)), 0), 0u)
      << summary;
  EXPECT_NE(summary.find(native_bf16() ? "bf16 native" : "bf16 computed in fp32"),
            std::string::npos)
      << summary;
#if defined(__AVX2__)
  // A build for AVX2 runs only where the hardware has it.
  EXPECT_GE(hardware, CpuIsa::Avx2);
#endif
}

TEST(CpuIsa, AMisspelledCapNamesTheVariableTheValueAndTheChoices) {
  const char* saved = std::getenv("PARADIFF_MAX_ISA");
  const std::string kept = saved ? saved : "";
  setenv("PARADIFF_MAX_ISA", "avx-512", 1);
  try {
    cpu_isa_cap();
    ADD_FAILURE() << "a misspelled cap was accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("PARADIFF_MAX_ISA=avx-512"), std::string::npos) << message;
    EXPECT_NE(message.find("avx2, avx512, avx512_bf16, amx"), std::string::npos) << message;
  }
  setenv("PARADIFF_MAX_ISA", "", 1);
  EXPECT_FALSE(cpu_isa_cap());
  if (saved)
    setenv("PARADIFF_MAX_ISA", kept.c_str(), 1);
  else
    unsetenv("PARADIFF_MAX_ISA");
}

}  // namespace
}  // namespace paradiff
