#include "ipc/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

// glibc 2.36's <sys/pidfd.h> forgets extern "C" (fixed in 2.37).
extern "C" {
#include <sys/pidfd.h>
}

#include "absl/strings/str_cat.h"
#include "ipc/internal/posix_error.h"

extern char** environ;

namespace crunch::ipc {
namespace {

// Owns posix_spawn's attribute and file-action objects.
struct SpawnPlan {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  SpawnPlan() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnPlan() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

std::vector<std::string> MergeEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  auto name_of = [](const std::string& entry) { return entry.substr(0, entry.find('=')); };
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    bool replaced = false;
    for (const std::string& x : extra) replaced |= name_of(x) == name_of(entry);
    if (!replaced) env.push_back(std::move(entry));
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// Whether this process may use pidfds (asked once: the answer does not change).
bool PidfdsWork() {
  static const bool work = [] {
    UniqueFd self(pidfd_open(::getpid(), 0));
    return self.valid();
  }();
  return work;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

absl::StatusOr<ChildProcess> ChildProcess::Spawn(const SpawnOptions& options) {
  SpawnPlan plan;
  sigset_t signals;
  sigemptyset(&signals);
  posix_spawnattr_setsigmask(&plan.attr, &signals);
  sigfillset(&signals);
  posix_spawnattr_setsigdefault(&plan.attr, &signals);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (options.own_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&plan.attr, 0);
  }
  posix_spawnattr_setflags(&plan.attr, flags);

  // Stage every fd at a fresh high number first, so that mapping a->b and
  // b->c never clobbers b before it is copied. The staged copies are
  // close-on-exec; dup2 onto the target clears that flag in the child.
  std::vector<UniqueFd> staged;
  auto stage = [&](int from, int to) -> absl::Status {
    UniqueFd copy(::fcntl(from, F_DUPFD_CLOEXEC, 100));
    if (!copy.valid()) return internal::ErrnoError(absl::StrCat("dup(fd ", from, ") for spawn"));
    posix_spawn_file_actions_adddup2(&plan.actions, copy.get(), to);
    staged.push_back(std::move(copy));
    return absl::OkStatus();
  };
  int first_free_fd = 3;
  for (const auto& [from, to] : options.fds) {
    if (absl::Status s = stage(from, to); !s.ok()) return s;
    first_free_fd = std::max(first_free_fd, to + 1);
  }
  // Without pidfds: the child gets the only write end of the exit pipe, at
  // the first fd number nothing else uses (it never closes it; exit does).
  const bool use_pidfd = PidfdsWork() && !options.exit_pipe;
  UniqueFd exit_read;
  if (!use_pidfd) {
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC) != 0) return internal::ErrnoError("pipe2(exit pipe)");
    exit_read = UniqueFd(ends[0]);
    UniqueFd exit_write(ends[1]);
    if (absl::Status s = stage(exit_write.get(), first_free_fd); !s.ok()) return s;
  }

  std::vector<std::string> argv_strings{options.path};
  argv_strings.insert(argv_strings.end(), options.args.begin(), options.args.end());
  std::vector<std::string> env_strings = MergeEnvironment(options.env);
  std::vector<char*> argv = CStrings(argv_strings);
  std::vector<char*> envp = CStrings(env_strings);

  pid_t pid;
  int err =
      posix_spawn(&pid, options.path.c_str(), &plan.actions, &plan.attr, argv.data(), envp.data());
  if (err != 0) return internal::ErrnoError(absl::StrCat("spawn ", options.path), err);
  staged.clear();  // The child's copies are its own now; the exit pipe has one writer left.
  if (!use_pidfd) return ChildProcess(pid, std::move(exit_read), false);
  UniqueFd pidfd(pidfd_open(pid, 0));
  if (!pidfd.valid()) {
    absl::Status status = internal::ErrnoError(absl::StrCat("pidfd_open(", pid, ")"));
    ::kill(pid, SIGKILL);
    internal::RetryOnEintr([&] { return ::waitpid(pid, nullptr, 0); });
    return status;
  }
  return ChildProcess(pid, std::move(pidfd), true);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      exit_fd_(std::move(other.exit_fd_)),
      has_pidfd_(other.has_pidfd_) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    KillAndReap();
    pid_ = std::exchange(other.pid_, -1);
    exit_fd_ = std::move(other.exit_fd_);
    has_pidfd_ = other.has_pidfd_;
  }
  return *this;
}

ChildProcess::~ChildProcess() { KillAndReap(); }

void ChildProcess::KillAndReap() noexcept {
  if (pid_ <= 0) return;
  SendSignal(SIGKILL);
  internal::RetryOnEintr([&] { return ::waitpid(pid_, nullptr, 0); });
  pid_ = -1;
}

absl::Status ChildProcess::Signal(int signo) const {
  if (pid_ <= 0) return absl::FailedPreconditionError("child process was already reaped");
  if (SendSignal(signo) != 0 && errno != ESRCH) {
    return internal::ErrnoError(absl::StrCat("signal ", signo, " to pid ", pid_));
  }
  return absl::OkStatus();
}

// REQUIRES: not reaped (so the pid is still this child's, if only as a zombie).
int ChildProcess::SendSignal(int signo) const noexcept {
  return has_pidfd_ ? pidfd_send_signal(exit_fd_.get(), signo, nullptr, 0) : ::kill(pid_, signo);
}

absl::StatusOr<int> ChildProcess::Wait() {
  if (pid_ <= 0) return absl::FailedPreconditionError("child process was already reaped");
  int status = 0;
  if (internal::RetryOnEintr([&] { return ::waitpid(pid_, &status, 0); }) < 0) {
    return internal::ErrnoError(absl::StrCat("waitpid(", pid_, ")"));
  }
  pid_ = -1;
  return status;
}

absl::StatusOr<std::optional<int>> ChildProcess::TryWait() {
  if (pid_ <= 0) return absl::FailedPreconditionError("child process was already reaped");
  int status = 0;
  pid_t r = internal::RetryOnEintr([&] { return ::waitpid(pid_, &status, WNOHANG); });
  if (r < 0) return internal::ErrnoError(absl::StrCat("waitpid(", pid_, ")"));
  if (r == 0) return std::optional<int>();
  pid_ = -1;
  return std::optional<int>(status);
}

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return absl::StrCat("exited with status ", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    const char* name = sigdescr_np(sig);
    return absl::StrCat("killed by signal ", sig, " (", name ? name : "unknown", ")");
  }
  return absl::StrCat("wait status ", wait_status);
}

absl::Status ExitWhenParentDies(pid_t parent) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return internal::ErrnoError("prctl(PDEATHSIG)");
  // The parent may have died before prctl took effect.
  if (::getppid() != parent) {
    return absl::FailedPreconditionError(
        absl::StrCat("the daemon (pid ", parent, ") is gone; a worker does not outlive it"));
  }
  return absl::OkStatus();
}

}  // namespace crunch::ipc
