// WorkerLimits: the resource limits and nice value of a crunch_worker process
// ([cpu] worker_* in crunchd.toml), how the daemon passes them on the worker's
// command line, and how the worker applies them to itself once it has attached
// to its slot (before it installs its seccomp filter: daemon/worker_seccomp.h).
//
//   * address space: RLIMIT_AS, soft and hard, set to what the worker has
//     mapped when it starts serving (code, libraries, the whole shared
//     segment) plus the configured bytes, so the setting means "what kernels
//     may allocate" whatever [cpu] arena_bytes is. An allocation past it fails
//     like any other: malloc returns null, zstd reports an allocation error,
//     operator new throws std::bad_alloc, which the worker turns into
//     RESOURCE_EXHAUSTED for the task.
//   * CPU seconds: RLIMIT_CPU for the worker process's whole life (soft = N,
//     hard = N + 1): when it runs out the kernel sends SIGXCPU, the worker dies
//     and the task it was running ends ABORTED naming the signal. The pool
//     replaces a worker between tasks once it has used half of it (see
//     daemon/cpu_pool.h), so only a task that burns the other half is killed.
//   * nice: added to crunchd's own nice value (as `nice -n` does), 0..19, so
//     the daemon's threads keep the CPU they need to feed the workers. Raising
//     a nice value needs no privilege, so this does not fail for lack of one.
//   * open files: RLIMIT_NOFILE, soft and hard (at most crunchd's hard limit).
//
// Thread safety: plain values and free functions; ApplyWorkerLimits changes
// the calling process.

#ifndef CRUNCH_DAEMON_WORKER_LIMITS_H_
#define CRUNCH_DAEMON_WORKER_LIMITS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace crunch::daemon {

// 0 (or false for `seccomp`) leaves the matter as the worker inherited it.
struct WorkerLimits {
  uint64_t address_space_bytes = 0;  // Beyond what the worker maps at start.
  uint64_t cpu_seconds = 0;
  uint32_t nice = 0;  // Added to the inherited nice value.
  uint64_t open_files = 0;
  bool seccomp = true;  // Install daemon/worker_seccomp.h's filter.

  bool operator==(const WorkerLimits&) const = default;
};

// The worker's command-line flags for `limits` (none for a default).
std::vector<std::string> WorkerLimitsFlags(const WorkerLimits& limits);
// If `arg` is one of those flags, stores it in `*limits` and returns true;
// `*error` is set for a known flag with a bad value.
bool ParseWorkerLimitsFlag(std::string_view arg, WorkerLimits* limits, std::string* error);

// Sets the rlimits and the nice value (not seccomp). Errors name the limit
// and the errno.
absl::Status ApplyWorkerLimits(const WorkerLimits& limits);

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_WORKER_LIMITS_H_
