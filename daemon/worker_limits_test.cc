#include "daemon/worker_limits.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>

namespace crunch::daemon {
namespace {

TEST(WorkerLimits, DefaultsNeedNoFlags) { EXPECT_TRUE(WorkerLimitsFlags(WorkerLimits{}).empty()); }

TEST(WorkerLimits, FlagsParseBackToTheSameLimits) {
  WorkerLimits limits{.address_space_bytes = 1ull << 30,
                      .cpu_seconds = 60,
                      .nice = 7,
                      .open_files = 64,
                      .seccomp = false};
  WorkerLimits parsed;
  for (const std::string& flag : WorkerLimitsFlags(limits)) {
    std::string error;
    EXPECT_TRUE(ParseWorkerLimitsFlag(flag, &parsed, &error)) << flag;
    EXPECT_EQ(error, "") << flag;
  }
  EXPECT_EQ(parsed, limits);
}

TEST(WorkerLimits, OtherFlagsAreNotTheirsAndBadValuesAreErrors) {
  WorkerLimits limits;
  std::string error;
  EXPECT_FALSE(ParseWorkerLimitsFlag("--spin-ns=5", &limits, &error));
  EXPECT_TRUE(ParseWorkerLimitsFlag("--nice=20", &limits, &error));
  EXPECT_EQ(error, "bad value in '--nice=20'; allowed: an integer in 0..19");
  error.clear();
  EXPECT_TRUE(ParseWorkerLimitsFlag("--open-files=x", &limits, &error));
  EXPECT_NE(error, "");
  EXPECT_EQ(limits, WorkerLimits{});
}

rlimit Get(int resource) {
  rlimit limit{};
  ::getrlimit(resource, &limit);
  return limit;
}

// Each one changes the process, so it runs in a child (a death test's fork)
// and reports through its exit status.
[[noreturn]] void ApplyAndCheckEveryLimit() {
  errno = 0;
  const int nice_before = ::getpriority(PRIO_PROCESS, 0);
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0;
  statm >> pages;
  const uint64_t mapped = pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t extra = 256ull << 20;
  WorkerLimits limits;
  limits.address_space_bytes = extra;
  limits.cpu_seconds = 30;
  limits.nice = 3;
  limits.open_files = 32;
  if (!ApplyWorkerLimits(limits).ok()) std::_Exit(1);
  const rlimit as = Get(RLIMIT_AS);
  // The configured bytes on top of what was mapped before (and at most what
  // the check itself may have mapped since).
  if (as.rlim_cur != as.rlim_max || as.rlim_cur < mapped + extra ||
      as.rlim_cur > mapped + extra + (16ull << 20)) {
    std::_Exit(2);
  }
  if (Get(RLIMIT_CPU).rlim_cur != 30 || Get(RLIMIT_CPU).rlim_max != 31) std::_Exit(3);
  if (Get(RLIMIT_NOFILE).rlim_cur != 32 || Get(RLIMIT_NOFILE).rlim_max != 32) std::_Exit(4);
  if (::getpriority(PRIO_PROCESS, 0) != std::min(19, nice_before + 3)) std::_Exit(5);
  std::_Exit(0);
}

TEST(WorkerLimits, ApplySetsEveryLimitAndRaisesTheNiceValue) {
  EXPECT_EXIT(ApplyAndCheckEveryLimit(), ::testing::ExitedWithCode(0), "");
}

[[noreturn]] void AllocatePastTheLimit() {
  WorkerLimits limits;
  limits.address_space_bytes = 64ull << 20;
  if (!ApplyWorkerLimits(limits).ok()) std::_Exit(1);
  void* small = std::malloc(16 << 20);
  void* big = std::malloc(128 << 20);
  std::_Exit(small != nullptr && big == nullptr ? 0 : 2);
}

TEST(WorkerLimits, AnAllocationPastTheAddressSpaceFails) {
#ifdef CRUNCH_SANITIZED
  GTEST_SKIP() << "an address-space limit cannot hold under a sanitizer's shadow mappings "
                  "(terabytes reserved at start), and its allocator aborts instead of failing";
#endif
  EXPECT_EXIT(AllocatePastTheLimit(), ::testing::ExitedWithCode(0), "");
}

TEST(WorkerLimits, OpenFilesAboveWhatTheKernelAllowsIsAnErrorNamingTheLimit) {
  // Above both the hard limit and fs.nr_open: refused even to root.
  uint64_t nr_open = 0;
  std::ifstream("/proc/sys/fs/nr_open") >> nr_open;
  const rlimit nofile = Get(RLIMIT_NOFILE);
  if (nofile.rlim_max == RLIM_INFINITY) GTEST_SKIP() << "no hard limit on open files";
  WorkerLimits limits;
  limits.open_files = std::max<uint64_t>(nofile.rlim_max, nr_open) + 1;
  absl::Status status = ApplyWorkerLimits(limits);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("RLIMIT_NOFILE"), absl::string_view::npos) << status;
}

}  // namespace
}  // namespace crunch::daemon
