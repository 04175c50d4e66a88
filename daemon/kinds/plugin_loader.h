// Loading the CPU kinds into a process: the built-ins, then each plugin file.
//
// Only crunch_worker processes load plugins: the workers that run tasks, and
// the short-lived one that reads the kinds for the daemon (crunch_worker
// --describe, see daemon/cpu_kind_probe.h). The daemon itself never runs
// plugin code, so a plugin that crashes or hangs while loading costs a worker,
// not the service.
//
// A plugin is dlopen()ed (RTLD_NOW | RTLD_LOCAL: every symbol resolved now, so
// a missing one is a load error, not a crash in the middle of a task) and never
// unloaded: its kinds' functions are called until the process exits.
//
// Thread safety: call from one thread, before running tasks.

#ifndef CRUNCH_DAEMON_KINDS_PLUGIN_LOADER_H_
#define CRUNCH_DAEMON_KINDS_PLUGIN_LOADER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/kind.h"

namespace crunch::daemon {

// The built-in CPU kinds, then each plugin's in `plugin_paths` order (the order
// is the kinds' numbering, so the daemon and every worker must load the same
// list). Errors name the file: it cannot be loaded (dlerror's reason), does not
// export crunch_plugin_init, refused to load (its crunch_plugin_load_error),
// was built for another ABI version, has a malformed table, or defines a kind
// that a built-in or an earlier plugin already defines (naming both).
absl::StatusOr<std::vector<KindSpec>> LoadCpuKinds(const std::vector<std::string>& plugin_paths);

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_KINDS_PLUGIN_LOADER_H_
