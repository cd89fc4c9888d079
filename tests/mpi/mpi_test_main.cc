// main() of the MPI tests: starts the distributed runtime, gives every rank the same random seed,
// runs the tests on every rank, and fails on every rank if any rank failed.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "mpi_world.h"
#include "paradiff/dist/distributed_runtime.h"

namespace paradiff::testing {

namespace {
dist::Communicator* g_world = nullptr;

// What a rank other than 0 prints: only its failures, each with the rank and the test's name.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestStart(const ::testing::TestInfo& test) override {
    test_ = std::string(test.test_suite_name()) + "." + test.name();
  }
  void OnTestEnd(const ::testing::TestInfo&) override { test_ = "(no test)"; }
  // (Called with gtest's lock held: UnitTest's accessors would deadlock here.)
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "rank %d: %s failed at %s:%d\n%s\n", rank_, test_.c_str(),
                 result.file_name() != nullptr ? result.file_name() : "?", result.line_number(),
                 result.message());
  }
  // Failures outside any test (an environment, a static initialiser) have no test to name.
  void OnTestProgramEnd(const ::testing::UnitTest& unit) override {
    const ::testing::TestResult& ad_hoc = unit.ad_hoc_test_result();
    for (int i = 0; i < ad_hoc.total_part_count(); ++i)
      if (ad_hoc.GetTestPartResult(i).failed())
        std::fprintf(stderr, "rank %d: failure outside any test: %s\n", rank_,
                     ad_hoc.GetTestPartResult(i).message());
    if (!unit.Passed())
      std::fprintf(stderr, "rank %d: %d test(s) failed of %d run\n", rank_,
                   unit.failed_test_count(), unit.test_to_run_count());
  }

 private:
  int rank_;
  std::string test_ = "(no test)";
};
}  // namespace

dist::Communicator& world() {
  return *g_world;
}

int launched_world_size() {
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  return size ? std::atoi(size) : 1;
}

}  // namespace paradiff::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  paradiff::dist::DistributedRuntime runtime(&argc, &argv);
  auto& world = runtime.world();
  paradiff::testing::g_world = &world;
  // One seed for all ranks: every rank must draw the same "fresh" random model and inputs.
  uint64_t seed = 0;
  if (world.rank() == 0) {
    if (const char* env = std::getenv("PARADIFF_TEST_SEED")) {
      seed = std::strtoull(env, nullptr, 10);
    } else {
      std::random_device rd;
      seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    }
  }
  world.broadcast(&seed, sizeof(seed), 0);
  setenv("PARADIFF_TEST_SEED", std::to_string(seed).c_str(), 1);
  if (world.rank() != 0) {
    // Only rank 0 prints the run; other ranks report their own failures.
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new paradiff::testing::FailurePrinter(world.rank()));
  }
  int64_t failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  world.allreduce(&failed, 1, paradiff::dist::ReduceType::I64, paradiff::dist::ReduceOp::Max);
  if (failed && world.rank() != 0)
    std::fprintf(stderr, "rank %d: some test failed\n", world.rank());
  return failed ? 1 : 0;
}
