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

// One plugin file to load.
struct PluginToLoad {
  // The configured path ([plugins] paths): what errors and the kinds' source
  // ("plugin NAME VERSION (PATH)") name. Must be absolute.
  std::string name;
  // What dlopen() opens: `name` itself, or /proc/self/fd/N for the file the
  // daemon holds open and passed down (daemon/plugin_files.h). Either way
  // the kinds read the same, so the catalog's digest does not depend on it.
  std::string load_path;
};

// The plugin a worker was handed as its inherited `fd`, known as `name`
// (crunch_worker --plugin-fd=N:PATH; the daemon holds the file open, see
// daemon/plugin_files.h). While `name` still is that file (same device and
// inode) it is loaded by `name`, as a --plugin=PATH would be, so that its
// $ORIGIN and its name in the link map are the real ones. Once a new file was
// put at `name`, the held one is loaded through /proc/self/fd/N (a plugin
// that finds libraries through $ORIGIN then cannot find them). Without /proc,
// only `name` can be loaded. FAILED_PRECONDITION if `fd` is not open.
absl::StatusOr<PluginToLoad> InheritedPlugin(int fd, const std::string& name);

// The built-in CPU kinds, then each plugin's in `plugins` order (the order is
// the kinds' numbering, so the daemon and every worker must load the same
// list). Errors name the file: its name is not absolute, it cannot be loaded
// (dlerror's reason), does not export crunch_plugin_init, refused to load (its
// crunch_plugin_load_error), was built for another ABI version, has a
// malformed table, or defines a kind that a built-in or an earlier plugin
// already defines (naming both).
absl::StatusOr<std::vector<KindSpec>> LoadCpuKinds(const std::vector<PluginToLoad>& plugins);

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_KINDS_PLUGIN_LOADER_H_
