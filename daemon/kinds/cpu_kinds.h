// The built-in CPU task kinds: noop, spin, fib, sha256, zstd.compress,
// zstd.decompress and primes.
//
// They are a plugin table like any other (crunch/plugin.h), linked into
// crunch_worker instead of loaded from a file, and run the same way
// (plugin_kinds.h). Their kernels write into the output extent the daemon lends
// them, sized from each kind's declared output bound, and fail with
// RESOURCE_EXHAUSTED, not a crash or a bigger buffer, when a result does not
// fit. Long-running kernels poll crunch_task_should_stop() and end with
// CANCELLED or DEADLINE_EXCEEDED.
//
// Thread safety: the kernels keep no state between calls; any number may run
// at once, in any threads.

#ifndef CRUNCH_DAEMON_KINDS_CPU_KINDS_H_
#define CRUNCH_DAEMON_KINDS_CPU_KINDS_H_

#include <crunch/plugin.h>

#include <vector>

#include "daemon/kind.h"

namespace crunch::daemon {

// The built-ins' table, as a plugin's crunch_plugin_init would return it. Like
// a plugin's init, the first call does the one-time set-up that may need files
// (OpenSSL reads its configuration), so call it before confining the process.
const crunch_plugin* BuiltinCpuPlugin();

// Every built-in CPU kind (KindsFromPlugin of the table), in the order
// ListKinds shows them. Calls BuiltinCpuPlugin().
std::vector<KindSpec> CpuKinds();

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_KINDS_CPU_KINDS_H_
