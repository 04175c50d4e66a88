#include "daemon/worker_seccomp.h"

#include <errno.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <initializer_list>
#include <memory>

#include "absl/strings/str_cat.h"

namespace crunch::daemon {
namespace {
// Syscalls the worker may make with any arguments.
constexpr const char* kAllowed[] = {
    // I/O on the fds it has: the eventfds, stderr.
    "read", "readv", "write", "writev", "close", "fstat",
    // Waiting on the doorbell.
    "poll", "ppoll", "futex",
    // Memory (malloc, zstd's contexts); mmap and mprotect are below, without PROT_EXEC.
    "munmap", "mremap", "madvise", "brk",
    // Time.
    "clock_gettime", "clock_getres", "gettimeofday", "time", "clock_nanosleep", "nanosleep",
    "sched_yield",
    // Who it is; randomness (OpenSSL).
    "getpid", "gettid", "getrandom",
    // Signals (abort() on a failed assertion or an uncaught exception).
    "rt_sigreturn", "rt_sigprocmask", "rt_sigaction", "sigaltstack", "restart_syscall",
    // The end.
    "exit", "exit_group"};

#ifdef CRUNCH_SANITIZED
// What the sanitizers' runtimes call in a worker built with them (the asan and
// tsan presets): pipe2 to probe whether memory is readable before touching it
// (sanitizer_common's IsAccessibleMemoryRange, used by UBSan's checks), and
// ioctl(TCGETS) (isatty, to colour a report: a plugin's crash is reported
// by ASan's SEGV handler, which the filter killed there before).
constexpr const char* kSanitizerRuntime[] = {"pipe", "pipe2"};
#endif

// Syscalls that open a file: EACCES instead of death (see the header).
constexpr const char* kOpens[] = {"open", "openat", "openat2", "creat"};

// Signals to itself only.
constexpr const char* kSelfSignals[] = {"kill", "tkill", "tgkill"};

struct FilterFree {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};

absl::Status SeccompError(absl::string_view what, int rc) {
  return absl::FailedPreconditionError(
      absl::StrCat("seccomp: ", what, " failed: ", std::strerror(-rc)));
}

absl::Status AddRule(scmp_filter_ctx ctx, uint32_t action, const char* name,
                     std::initializer_list<scmp_arg_cmp> args = {}) {
  const int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return absl::OkStatus();  // Not a syscall on this architecture.
  const int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()),
                                        args.size() == 0 ? nullptr : args.begin());
  if (rc < 0) return SeccompError(absl::StrCat("allowing ", name), rc);
  return absl::OkStatus();
}

}  // namespace

absl::Status InstallWorkerSeccompFilter() {
  // KILL_PROCESS needs the seccomp() syscall to check that the kernel has it;
  // under a filter that forbids seccomp() itself (systemd 252's
  // SystemCallFilter=@system-service does) libseccomp falls back to prctl()
  // and KILL_THREAD, which ends a single-threaded worker the same way.
  std::unique_ptr<void, FilterFree> ctx(seccomp_init(SCMP_ACT_KILL_PROCESS));
  if (ctx == nullptr) ctx.reset(seccomp_init(SCMP_ACT_KILL_THREAD));
  if (ctx == nullptr) return absl::FailedPreconditionError("seccomp: seccomp_init failed");
  for (const char* name : kAllowed) {
    if (absl::Status s = AddRule(ctx.get(), SCMP_ACT_ALLOW, name); !s.ok()) return s;
  }
#ifdef CRUNCH_SANITIZED
  for (const char* name : kSanitizerRuntime) {
    if (absl::Status s = AddRule(ctx.get(), SCMP_ACT_ALLOW, name); !s.ok()) return s;
  }
  if (absl::Status s = AddRule(ctx.get(), SCMP_ACT_ALLOW, "ioctl", {SCMP_A1(SCMP_CMP_EQ, TCGETS)});
      !s.ok()) {
    return s;
  }
#endif
  for (const char* name : kOpens) {
    if (absl::Status s = AddRule(ctx.get(), SCMP_ACT_ERRNO(EACCES), name); !s.ok()) return s;
  }
  const auto pid = static_cast<scmp_datum_t>(::getpid());
  for (const char* name : kSelfSignals) {
    if (absl::Status s = AddRule(ctx.get(), SCMP_ACT_ALLOW, name, {SCMP_A0(SCMP_CMP_EQ, pid)});
        !s.ok()) {
      return s;
    }
  }
  // Memory, but never executable: the code the worker runs is what it exec'd.
  for (const char* name : {"mmap", "mprotect"}) {
    if (absl::Status s =
            AddRule(ctx.get(), SCMP_ACT_ALLOW, name, {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
        !s.ok()) {
      return s;
    }
  }
  if (const int rc = seccomp_load(ctx.get()); rc < 0) return SeccompError("loading the filter", rc);
  return absl::OkStatus();
}

}  // namespace crunch::daemon
