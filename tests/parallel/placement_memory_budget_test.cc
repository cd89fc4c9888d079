// max_memory: size strings against accelerate's own convert_file_size_to_int (golden), the
// deliberate refusal of a lowercase "b", the command-line syntax, and the default budget.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "paradiff/parallel/placement/memory_budget.h"
#include "placement_test_util.h"
#include "testing/temp_dir.h"

namespace paradiff::parallel {
namespace {

using testing::error_of;

bool has_lowercase_b_unit(const std::string& s) {
  return s.size() >= 2 && s.back() == 'b' &&
         std::string("KMGkmgIi").find(s[s.size() - 2]) != std::string::npos;
}

TEST(ConvertFileSizeToInt, MatchesAccelerateOnEveryGoldenString) {
  const auto cases = testing::load_placement_fixture("max_memory.json");
  ASSERT_GT(cases.size(), 20u);
  for (const auto& c : cases) {
    const std::string text = c[0];
    SCOPED_TRACE(text);
    if (has_lowercase_b_unit(text)) {
      // The deviation: accelerate reads bits (or, for "gib", bytes); paradiff refuses.
      EXPECT_NE(error_of([&] { convert_file_size_to_int(text); }).find("lowercase 'b'"),
                std::string::npos);
    } else if (!c[2].is_null()) {
      EXPECT_EQ(error_of([&] { convert_file_size_to_int(text); }), c[2].get<std::string>());
    } else {
      EXPECT_EQ(convert_file_size_to_int(text), c[1].get<int64_t>());
    }
  }
}

TEST(ConvertFileSizeToInt, RefusesWhatTheIssueNames) {
  EXPECT_EQ(error_of([] { convert_file_size_to_int("16G"); }),
            "`size` 16G is not in a valid format. Use an integer for bytes, or a string with an "
            "unit (like '5.0GB').");
  EXPECT_EQ(error_of([] { convert_file_size_to_int("16gb"); }),
            "memory size '16gb': accelerate reads a lowercase 'b' as bits (an eighth of 16GB); "
            "paradiff refuses it as ambiguous. Write '16GB' (10^9-based bytes) or '16GiB' "
            "(2^30-based bytes)");
  EXPECT_EQ(error_of([] { convert_file_size_to_int("16Gb"); }),
            "memory size '16Gb': accelerate reads a lowercase 'b' as bits (an eighth of 16GB); "
            "paradiff refuses it as ambiguous. Write '16GB' (10^9-based bytes) or '16GiB' "
            "(2^30-based bytes)");
  EXPECT_EQ(error_of([] { convert_file_size_to_int("512mib"); }),
            "memory size '512mib': a lowercase 'b' means bits; paradiff refuses it as "
            "ambiguous. Write '512MiB' (2^20-based bytes)");
  EXPECT_NE(error_of([] { convert_file_size_to_int("infGB"); }).find("not in a valid format"),
            std::string::npos);
  EXPECT_NE(error_of([] { convert_file_size_to_int("1e30GB"); }).find("too large"),
            std::string::npos);
}

TEST(ParseMemoryValue, DigitsAreIntegerBytes) {
  EXPECT_EQ(parse_memory_value("16000000000"), 16000000000);
  EXPECT_EQ(parse_memory_value(" 16GiB"), int64_t{16} << 30);
  EXPECT_NE(error_of([] { parse_memory_value("-5"); }).find("not in a valid format"),
            std::string::npos);
}

TEST(MaxMemory, ParsesTheCommandLineSyntaxInAccelerateOrder) {
  const MaxMemory m = MaxMemory::parse("disk=200GB, 1=16GiB,0=16GB", 2);
  EXPECT_EQ(m.str(), "{0: 16000000000, 1: 17179869184, disk: 200000000000}");
  EXPECT_EQ(m.at(DeviceKey::disk()), 200000000000);
  EXPECT_EQ(MaxMemory::parse("", 4).str(), "{}");
}

TEST(MaxMemory, RefusesWithMessagesNamingTheValue) {
  EXPECT_EQ(error_of([] { MaxMemory::parse("0=16GB,2=16GB", 2); }),
            "max_memory names rank 2, but the world has 2 rank(s) (0..1)");
  EXPECT_NE(error_of([] {
              MaxMemory::parse("cpu=64GB", 2);
            }).find("max_memory key 'cpu': every rank is a CPU process here"),
            std::string::npos);
  EXPECT_EQ(error_of([] { MaxMemory::parse("gpu0=1GB", 2); }),
            "max_memory key 'gpu0' is not recognized; keys are ranks (integers 0..1) and 'disk'");
  EXPECT_EQ(error_of([] { MaxMemory::parse("0=16GB,0=8GB", 2); }),
            "max_memory gives device 0 twice");
  EXPECT_EQ(error_of([] { MaxMemory::parse("0:16GB", 2); }),
            "max_memory entry '0:16GB' must be KEY=SIZE, e.g. 0=16GB or disk=200GB");
  EXPECT_EQ(error_of([] { MaxMemory::parse("0=16G", 2); }),
            "max_memory entry '0=16G': `size` 16G is not in a valid format. Use an integer for "
            "bytes, or a string with an unit (like '5.0GB').");
  EXPECT_NE(error_of([] { MaxMemory::parse("1=16gb", 2); }).find("lowercase 'b'"),
            std::string::npos);
}

void write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

TEST(DefaultBudget, MemAvailableSharedAmongTheRanksOnTheHost) {
  paradiff::testing::TempDir dir;
  HostMemorySources s{dir.file("meminfo"), dir.file("cgroup"), dir.file("sys")};
  write(s.meminfo, "MemTotal:       131072000 kB\nMemAvailable:   100000000 kB\n");
  write(s.self_cgroup, "0::/\n");
  write(s.cgroup_root + "/memory.max", "max\n");
  EXPECT_EQ(available_host_memory(s), 102400000000);
  EXPECT_EQ(default_rank_budget(available_host_memory(s), 4), 25600000000);
  EXPECT_EQ(error_of([] { default_rank_budget(1, 0); }),
            "the number of ranks on this host must be >= 1, got 0");
}

TEST(DefaultBudget, CgroupLimitWinsWhenLower) {
  paradiff::testing::TempDir dir;
  HostMemorySources s{dir.file("meminfo"), dir.file("cgroup"), dir.file("sys")};
  write(s.meminfo, "MemAvailable:   100000000 kB\n");
  // cgroup v2, in this process's own group.
  write(s.self_cgroup, "0::/job/step\n");
  write(s.cgroup_root + "/job/step/memory.max", "8000000000\n");
  write(s.cgroup_root + "/job/step/memory.current", "3000000000\n");
  EXPECT_EQ(available_host_memory(s), 5000000000);
  // cgroup v1, unlimited: MemAvailable stands.
  write(s.self_cgroup, "4:cpu,cpuacct:/\n3:memory:/\n");
  write(s.cgroup_root + "/memory/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(available_host_memory(s), 102400000000);
  // cgroup v1 with a limit.
  write(s.cgroup_root + "/memory/memory.limit_in_bytes", "4000000000\n");
  write(s.cgroup_root + "/memory/memory.usage_in_bytes", "1000000000\n");
  EXPECT_EQ(available_host_memory(s), 3000000000);
}

TEST(DefaultBudget, RefusesAnUnreadableMeminfo) {
  paradiff::testing::TempDir dir;
  HostMemorySources s{dir.file("none"), dir.file("cgroup"), dir.file("sys")};
  EXPECT_NE(error_of([&] { available_host_memory(s); }).find("none: cannot open"),
            std::string::npos);
  write(s.meminfo, "MemTotal: 1 kB\n");
  EXPECT_NE(error_of([&] { available_host_memory(s); }).find("has no MemAvailable line"),
            std::string::npos);
}

TEST(DefaultBudget, ThisHostHasSome) {
  EXPECT_GT(available_host_memory(), 0);
}

}  // namespace
}  // namespace paradiff::parallel
