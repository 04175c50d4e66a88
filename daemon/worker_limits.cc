#include "daemon/worker_limits.h"

#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <limits>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace crunch::daemon {
namespace {

constexpr char kAddressSpaceFlag[] = "--address-space-bytes=";
constexpr char kCpuSecondsFlag[] = "--cpu-seconds=";
constexpr char kNiceFlag[] = "--nice=";
constexpr char kOpenFilesFlag[] = "--open-files=";
constexpr char kNoSeccompFlag[] = "--no-seccomp";

// "what: strerror" (absl::ErrnoToStatus appends the errno's text).
absl::Status ErrnoError(absl::string_view what, int err) { return absl::ErrnoToStatus(err, what); }

absl::Status SetLimit(int resource, absl::string_view name, rlim_t soft, rlim_t hard) {
  const rlimit limit{soft, hard};
  if (::setrlimit(resource, &limit) != 0) {
    return ErrnoError(absl::StrCat("setrlimit(", name, ", ", soft, ")"), errno);
  }
  return absl::OkStatus();
}

// What the process has mapped now (VmSize), from /proc/self/statm.
absl::StatusOr<uint64_t> MappedBytes() {
  std::FILE* statm = std::fopen("/proc/self/statm", "re");
  if (statm == nullptr) return ErrnoError("open /proc/self/statm", errno);
  unsigned long long pages = 0;
  const int n = std::fscanf(statm, "%llu", &pages);
  std::fclose(statm);
  if (n != 1) return absl::InternalError("/proc/self/statm does not start with a page count");
  return pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

bool ParseUint(std::string_view value, uint64_t* out) {
  return absl::SimpleAtoi(absl::string_view(value.data(), value.size()), out);
}

}  // namespace

std::vector<std::string> WorkerLimitsFlags(const WorkerLimits& limits) {
  std::vector<std::string> flags;
  if (limits.address_space_bytes != 0) {
    flags.push_back(absl::StrCat(kAddressSpaceFlag, limits.address_space_bytes));
  }
  if (limits.cpu_seconds != 0) flags.push_back(absl::StrCat(kCpuSecondsFlag, limits.cpu_seconds));
  if (limits.nice != 0) flags.push_back(absl::StrCat(kNiceFlag, limits.nice));
  if (limits.open_files != 0) flags.push_back(absl::StrCat(kOpenFilesFlag, limits.open_files));
  if (!limits.seccomp) flags.emplace_back(kNoSeccompFlag);
  return flags;
}

bool ParseWorkerLimitsFlag(std::string_view arg, WorkerLimits* limits, std::string* error) {
  if (arg == std::string_view(kNoSeccompFlag)) {
    limits->seccomp = false;
    return true;
  }
  struct Flag {
    std::string_view prefix;
    uint64_t max;
    uint64_t* out;
  };
  uint64_t nice = 0;
  const Flag flags[] = {
      {std::string_view(kAddressSpaceFlag), std::numeric_limits<uint64_t>::max() / 2,
       &limits->address_space_bytes},
      {kCpuSecondsFlag, std::numeric_limits<uint32_t>::max(), &limits->cpu_seconds},
      {kNiceFlag, 19, &nice},
      {kOpenFilesFlag, std::numeric_limits<uint32_t>::max(), &limits->open_files},
  };
  for (const Flag& flag : flags) {
    if (arg.substr(0, flag.prefix.size()) != flag.prefix) continue;
    uint64_t value = 0;
    if (!ParseUint(arg.substr(flag.prefix.size()), &value) || value > flag.max) {
      *error = absl::StrCat("bad value in '", absl::string_view(arg.data(), arg.size()),
                            "'; allowed: an integer in 0..", flag.max);
    } else {
      *flag.out = value;
      if (flag.out == &nice) limits->nice = static_cast<uint32_t>(nice);
    }
    return true;
  }
  return false;
}

absl::Status ApplyWorkerLimits(const WorkerLimits& limits) {
  if (limits.address_space_bytes != 0) {
    absl::StatusOr<uint64_t> mapped = MappedBytes();
    if (!mapped.ok()) return mapped.status();
    const rlim_t total = *mapped + limits.address_space_bytes;
    if (absl::Status s = SetLimit(RLIMIT_AS, "RLIMIT_AS", total, total); !s.ok()) return s;
  }
  if (limits.cpu_seconds != 0) {
    // The hard limit one second later: the soft one sends SIGXCPU, which
    // names the cause in the task's error; the hard one would send SIGKILL.
    if (absl::Status s =
            SetLimit(RLIMIT_CPU, "RLIMIT_CPU", limits.cpu_seconds, limits.cpu_seconds + 1);
        !s.ok()) {
      return s;
    }
  }
  if (limits.open_files != 0) {
    if (absl::Status s =
            SetLimit(RLIMIT_NOFILE, "RLIMIT_NOFILE", limits.open_files, limits.open_files);
        !s.ok()) {
      return s;
    }
  }
  if (limits.nice != 0) {
    errno = 0;
    const int current = ::getpriority(PRIO_PROCESS, 0);
    if (current == -1 && errno != 0) return ErrnoError("getpriority", errno);
    const int target = std::min(19, current + static_cast<int>(limits.nice));
    if (::setpriority(PRIO_PROCESS, 0, target) != 0) {
      return ErrnoError(absl::StrCat("setpriority(", target, ")"), errno);
    }
  }
  return absl::OkStatus();
}

}  // namespace crunch::daemon
