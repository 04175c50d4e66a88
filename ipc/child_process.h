// ChildProcess: a worker process started with posix_spawn, owned by its parent.
//
// The child gets exactly the fds it is given (everything else is close-on-exec
// in crunchd), default signal dispositions, an empty signal mask, and,
// optionally, a process group of its own so a terminal's Ctrl-C reaches only
// the daemon, which then drains and stops its workers itself.
//
// exit_fd() makes the child's exit an fd event (readable when it exits) that an
// Asio loop can wait on. It is a pidfd where the kernel offers pidfd_open
// (Linux 5.3+). Where it does not, or a seccomp profile or valgrind (3.19)
// refuses it, it is the read end of an "exit pipe" whose only write end the
// child holds: the kernel closes it when the child exits, and the read end
// sees end-of-file. Signals go through the pidfd, or else through the pid, which
// cannot be reused before the parent reaps the child: no signal reaches a
// stranger either way.
//
// Move-only. Destroying a ChildProcess that was not reaped kills it with
// SIGKILL and reaps it: no orphan and no zombie outlives its owner.
//
// Thread safety: not thread-safe. Spawn from a thread that lives as long as the
// daemon: a child's parent-death signal fires when the spawning *thread* exits.

#ifndef CRUNCH_IPC_CHILD_PROCESS_H_
#define CRUNCH_IPC_CHILD_PROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "ipc/unique_fd.h"

namespace crunch::ipc {

struct SpawnOptions {
  std::string path;               // Executable; not searched in $PATH.
  std::vector<std::string> args;  // argv[1..]; argv[0] is `path`.
  // {fd in this process, fd number in the child}. Overlaps are handled.
  std::vector<std::pair<int, int>> fds;
  // "NAME=value" entries added to (or replacing those in) this environment.
  std::vector<std::string> env;
  bool own_process_group = true;
  // Watch the exit through an exit pipe even where pidfds work (for tests).
  bool exit_pipe = false;
};

class ChildProcess {
 public:
  static absl::StatusOr<ChildProcess> Spawn(const SpawnOptions& options);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const noexcept { return pid_; }
  // Readable once the child has exited (it may turn readable a moment before
  // waitpid() can reap it). Valid until the ChildProcess is gone.
  int exit_fd() const noexcept { return exit_fd_.get(); }
  // Whether exit_fd() is a pidfd (else an exit pipe).
  bool has_pidfd() const noexcept { return has_pidfd_; }
  bool reaped() const noexcept { return pid_ <= 0; }

  // Sends `signo`; a child that already exited (not yet reaped) is not an error.
  absl::Status Signal(int signo) const;
  // Blocks until the child exits; returns its wait status (as from waitpid).
  absl::StatusOr<int> Wait();
  // The wait status if the child has exited, nullopt while it runs.
  absl::StatusOr<std::optional<int>> TryWait();

 private:
  ChildProcess(pid_t pid, UniqueFd exit_fd, bool has_pidfd) noexcept
      : pid_(pid), exit_fd_(std::move(exit_fd)), has_pidfd_(has_pidfd) {}
  void KillAndReap() noexcept;
  int SendSignal(int signo) const noexcept;

  pid_t pid_ = -1;
  UniqueFd exit_fd_;
  bool has_pidfd_ = false;
};

// Describes a wait status: "exited with status 3", "killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int wait_status);

// For a worker, first thing after exec: die with SIGKILL when `parent` (the
// daemon) dies, and exit now if it is already gone. FailedPrecondition then.
absl::Status ExitWhenParentDies(pid_t parent);

}  // namespace crunch::ipc

#endif  // CRUNCH_IPC_CHILD_PROCESS_H_
