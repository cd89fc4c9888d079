#include "paradiff/core/cpu_isa.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "paradiff/core/error.h"
#include "testing/scoped_env.h"

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
  const std::string summary = cpu_isa_summary();
  // bf16 is computed natively only at a level with bf16 instructions: always at amx, at
  // avx512_bf16 where the measured dot product pays, and as PARADIFF_BF16_ARITHMETIC forces.
  bool want_native = false;
  if (active >= CpuIsa::Avx512Bf16) {
    switch (bf16_arithmetic_setting()) {
      case Bf16Arithmetic::Native:
        want_native = true;
        EXPECT_NE(summary.find("(PARADIFF_BF16_ARITHMETIC=native)"), std::string::npos) << summary;
        break;
      case Bf16Arithmetic::Fp32:
        EXPECT_NE(summary.find("(PARADIFF_BF16_ARITHMETIC=fp32)"), std::string::npos) << summary;
        break;
      case Bf16Arithmetic::Auto:
        want_native = active == CpuIsa::Amx || bf16_dot_speed_ratio() >= kBf16DotPaysRatio;
        if (active == CpuIsa::Avx512Bf16) {
          EXPECT_NE(summary.find("x the fp32 FMA rate)"), std::string::npos) << summary;
        }
        break;
    }
  }
  EXPECT_EQ(native_bf16(), want_native) << summary;
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

// The measurement behind the avx512_bf16 decision: a ratio of two FLOP rates of the same
// machine, so within a factor of 8 of 1 on anything real; 0 without the instruction.
TEST(CpuIsa, MeasuresTheBf16DotProductAgainstTheFmaRate) {
  const double ratio = bf16_dot_speed_ratio();
  std::printf("  vdpbf16ps at %.2fx the fp32 FMA rate (%s)\n", ratio, cpu_isa_summary().c_str());
  if (hardware_cpu_isa() < CpuIsa::Avx512Bf16) {
    EXPECT_EQ(ratio, 0.0);
    return;
  }
  EXPECT_GT(ratio, 1.0 / 8);
  EXPECT_LT(ratio, 8.0);
  EXPECT_EQ(bf16_dot_speed_ratio(), ratio);  // measured once
}

TEST(CpuIsa, Bf16ArithmeticIsReadAndAMisspellingNamesTheVariableTheValueAndTheChoices) {
  const testing::ScopedEnv env("PARADIFF_BF16_ARITHMETIC", nullptr);
  EXPECT_EQ(bf16_arithmetic_setting(), Bf16Arithmetic::Auto);
  for (const auto& [value, want] :
       {std::pair{"", Bf16Arithmetic::Auto}, std::pair{"auto", Bf16Arithmetic::Auto},
        std::pair{"native", Bf16Arithmetic::Native}, std::pair{"fp32", Bf16Arithmetic::Fp32}}) {
    env.set(value);
    EXPECT_EQ(bf16_arithmetic_setting(), want) << value;
  }
  env.set("bf16");
  try {
    bf16_arithmetic_setting();
    ADD_FAILURE() << "a misspelled bf16 arithmetic was accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("PARADIFF_BF16_ARITHMETIC=bf16"), std::string::npos) << message;
    EXPECT_NE(message.find("auto, native, fp32"), std::string::npos) << message;
  }
}

// A job's agreement that comes after this process decided is accepted only if it is the same
// decision (dist/distributed_runtime.cc agrees before anything computes).
TEST(CpuIsa, AJobAgreementAfterTheDecisionMustMatchIt) {
  const bool native = native_bf16();
  EXPECT_NO_THROW(set_job_native_bf16(native));
  try {
    set_job_native_bf16(!native);
    ADD_FAILURE() << "a contrary agreement after the decision was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("PARADIFF_BF16_ARITHMETIC=fp32"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(native_bf16(), native);
}

TEST(CpuIsa, AMisspelledCapNamesTheVariableTheValueAndTheChoices) {
  const testing::ScopedEnv env("PARADIFF_MAX_ISA", "avx-512");
  try {
    cpu_isa_cap();
    ADD_FAILURE() << "a misspelled cap was accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("PARADIFF_MAX_ISA=avx-512"), std::string::npos) << message;
    EXPECT_NE(message.find("avx2, avx512, avx512_bf16, amx"), std::string::npos) << message;
  }
  env.set("");
  EXPECT_FALSE(cpu_isa_cap());
}

}  // namespace
}  // namespace paradiff
