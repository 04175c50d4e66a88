// The built-in CPU task kinds: noop, spin, fib, sha256, zstd.compress,
// zstd.decompress and primes.
//
// Their kernels run inside crunch_worker processes and write into the output
// extent the daemon lends them, so each spec's output_capacity says how much to
// lend (never more than limits.max_output_bytes) and each kernel fails with
// RESOURCE_EXHAUSTED, not a crash or a bigger buffer, when its result does not
// fit. Long-running kernels poll TaskContext::ShouldStop() and end with
// CANCELLED (the cancelled flag is set) or DEADLINE_EXCEEDED.
//
// Thread safety: the kernels keep no state between calls; any number may run
// at once, in any threads.

#ifndef CRUNCH_DAEMON_KINDS_CPU_KINDS_H_
#define CRUNCH_DAEMON_KINDS_CPU_KINDS_H_

#include <vector>

#include "daemon/kind.h"

namespace crunch::daemon {

// Every built-in CPU kind, in the order ListKinds shows them.
std::vector<KindSpec> CpuKinds();

// The one-time set-up the CPU kernels' libraries would otherwise do on first
// use, and that may need files (OpenSSL reads its configuration), so that a
// worker can do it before its seccomp filter forbids opening them.
void PrepareCpuKinds();

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_KINDS_CPU_KINDS_H_
