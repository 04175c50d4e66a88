// Proves the worker's seccomp filter denies what it should and allows what the
// kernels need. Each case installs the filter in a child (a death test's fork)
// and tries one thing there.

#include "daemon/worker_seccomp.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace crunch::daemon {
namespace {

using ::testing::ExitedWithCode;
using ::testing::KilledBySignal;

void Install() {
  if (absl::Status s = InstallWorkerSeccompFilter(); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    std::_Exit(99);
  }
}

// Each case runs in a child (a death test's fork): it installs the filter,
// tries one thing, and reports through its exit status, or dies of SIGSYS.

[[noreturn]] void CheckMode() {
  // Opened before: the filter lets the worker read fds it has, not open files.
  const int status = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  Install();
  char text[8192];
  const ssize_t n = ::read(status, text, sizeof(text) - 1);
  if (n <= 0) std::_Exit(1);
  text[n] = '\0';
  std::_Exit(std::strstr(text, "\nSeccomp:\t2\n") != nullptr ? 0 : 2);  // 2: filter mode.
}

TEST(WorkerSeccomp, PutsTheProcessInFilterMode) { EXPECT_EXIT(CheckMode(), ExitedWithCode(0), ""); }

[[noreturn]] void DoWhatKernelsDo() {
  int fds[2];
  if (::pipe(fds) != 0) std::_Exit(1);
  Install();
  // malloc, big (mmap) and small (brk); memory that is not executable.
  void* big = std::malloc(64 << 20);
  if (big == nullptr) std::_Exit(2);
  std::memset(big, 1, 64 << 20);
  std::free(big);
  std::string grow;
  for (int i = 0; i < 100000; ++i) grow += "x";
  // I/O on fds it has, clocks, sleeping, signals to itself.
  if (::write(fds[1], "ok", 2) != 2) std::_Exit(3);
  char buf[2];
  if (::read(fds[0], buf, 2) != 2) std::_Exit(4);
  timespec t{0, 1000};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  t = {0, 1000};
  ::nanosleep(&t, nullptr);
  if (::kill(::getpid(), 0) != 0) std::_Exit(5);
  std::fprintf(stderr, "still alive\n");
  std::_Exit(0);
}

TEST(WorkerSeccomp, AllowsWhatTheKernelsNeed) {
  EXPECT_EXIT(DoWhatKernelsDo(), ExitedWithCode(0), "still alive");
}

[[noreturn]] void OpenFiles(const std::string& path) {
  Install();
  const int created = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  if (created >= 0 || errno != EACCES) std::_Exit(1);
  const int existing = ::open("/etc/hostname", O_RDONLY | O_CLOEXEC);
  if (existing >= 0 || errno != EACCES) std::_Exit(2);
  std::_Exit(0);
}

TEST(WorkerSeccomp, OpeningAFileFailsWithEaccesAndCreatesNothing) {
  const std::string path = ::testing::TempDir() + "seccomp_created_" + std::to_string(::getpid());
  EXPECT_EXIT(OpenFiles(path), ExitedWithCode(0), "");
  struct stat st;
  EXPECT_NE(::stat(path.c_str(), &st), 0) << path << " was created";
}

[[noreturn]] void OpenSocket() {
  Install();
  ::socket(AF_INET, SOCK_STREAM, 0);
  std::_Exit(0);
}

TEST(WorkerSeccomp, SocketKillsTheWorker) { EXPECT_EXIT(OpenSocket(), KilledBySignal(SIGSYS), ""); }

[[noreturn]] void Exec() {
  Install();
  char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
  ::execve("/bin/true", argv, environ);
  std::_Exit(0);
}

TEST(WorkerSeccomp, ExecKillsTheWorker) { EXPECT_EXIT(Exec(), KilledBySignal(SIGSYS), ""); }

[[noreturn]] void Fork() {
  Install();
  ::fork();
  std::_Exit(0);
}

[[noreturn]] void StartThread() {
  Install();
  std::thread t([] {});
  t.join();
  std::_Exit(0);
}

TEST(WorkerSeccomp, ForkAndThreadsKillTheWorker) {
  EXPECT_EXIT(Fork(), KilledBySignal(SIGSYS), "");
  EXPECT_EXIT(StartThread(), KilledBySignal(SIGSYS), "");
}

[[noreturn]] void MapExecutable() {
  Install();
  ::mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  std::_Exit(0);
}

TEST(WorkerSeccomp, ExecutableMemoryKillsTheWorker) {
  EXPECT_EXIT(MapExecutable(), KilledBySignal(SIGSYS), "");
}

[[noreturn]] void SignalParent() {
  Install();
  ::kill(::getppid(), 0);
  std::_Exit(0);
}

[[noreturn]] void RaiseLimit() {
  Install();
  const rlimit limit{RLIM_INFINITY, RLIM_INFINITY};
  ::setrlimit(RLIMIT_AS, &limit);
  std::_Exit(0);
}

TEST(WorkerSeccomp, SignallingAnotherProcessOrChangingALimitKillsTheWorker) {
  EXPECT_EXIT(SignalParent(), KilledBySignal(SIGSYS), "");
  EXPECT_EXIT(RaiseLimit(), KilledBySignal(SIGSYS), "");
}

// systemd 252's SystemCallFilter=@system-service does not list seccomp(2), so
// under a unit without it the call fails with EPERM; libseccomp then falls
// back to prctl(PR_SET_SECCOMP), and the filter must hold all the same.
[[noreturn]] void InstallUnderAnOuterFilter() {
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_seccomp, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog outer{static_cast<unsigned short>(std::size(code)), code};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &outer) != 0) {
    std::_Exit(98);
  }
  if (::syscall(__NR_seccomp, SECCOMP_SET_MODE_STRICT, 1, nullptr) == 0 || errno != EPERM) {
    std::_Exit(97);
  }
  Install();
  ::socket(AF_UNIX, SOCK_STREAM, 0);
  std::_Exit(0);
}

TEST(WorkerSeccomp, WorksUnderAnOuterFilterThatForbidsTheSeccompSyscall) {
#ifdef CRUNCH_SANITIZED_THREAD
  // Without seccomp(2) libseccomp cannot kill a whole process, only the thread
  // that made the call; TSan's runtime has a thread of its own in every
  // process, which lives on, so the death test would wait for ever.
  GTEST_SKIP() << "under TSan the process keeps the sanitizer's own thread";
#endif
  EXPECT_EXIT(InstallUnderAnOuterFilter(), KilledBySignal(SIGSYS), "");
}

}  // namespace
}  // namespace crunch::daemon
