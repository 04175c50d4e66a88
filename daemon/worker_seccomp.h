// The seccomp filter of a crunch_worker process (libseccomp).
//
// The worker installs it last, after it has attached to its slot, built its
// kind table and applied its limits (daemon/worker_limits.h), so everything
// that needs a file or a syscall the filter forbids (the dynamic loader, the
// segment's mmap, library initialisation) has happened before.
//
// It allows what the CPU kernels and the ring protocol need — read/write/poll
// on the fds the worker has, futex, memory management without PROT_EXEC,
// clocks and sleeps, signals to itself, exit — and nothing else: no sockets,
// no exec, no fork or threads, no ptrace, no rlimit or priority changes. Any
// other syscall kills the worker with SIGSYS, which the daemon reports as the
// running task ABORTED "killed by signal 31 (Bad system call)": clearer than
// an EPERM a kernel might misreport. Opening a file (open, openat, openat2,
// creat) fails with EACCES instead, so a library that probes for an optional
// file goes on without it, and no file can be created or read.
//
// Thread safety: call from the worker's only thread (the filter covers the
// calling thread; the worker has no other).

#ifndef CRUNCH_DAEMON_WORKER_SECCOMP_H_
#define CRUNCH_DAEMON_WORKER_SECCOMP_H_

#include "absl/status/status.h"

namespace crunch::daemon {

// Installs the filter described above on the calling thread (and sets
// no_new_privs). FAILED_PRECONDITION if the kernel or an outer filter refuses it.
absl::Status InstallWorkerSeccompFilter();

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_WORKER_SECCOMP_H_
