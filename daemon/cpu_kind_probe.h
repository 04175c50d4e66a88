// ProbeCpuKinds: what CPU kinds the workers will serve, asked of a worker.
//
// The daemon never loads plugin code (daemon/kinds/plugin_loader.h). It runs
// `crunch_worker --describe --plugin-fd=N:PATH...` with the plugin files it
// holds open (daemon/plugin_files.h: the same files every worker of these
// kinds gets), reads the kind catalog the worker writes
// (daemon/kinds/kind_catalog.h) and validates calls against it. A plugin that fails to load,
// crashes or hangs in its init fails the probe, with the worker's own message, instead of the
// daemon: at start that stops crunchd with the reason; on reload the running
// kinds and workers stay.
//
// Thread safety: a plain blocking function; call it from a thread that lives
// until it returns (the worker's parent-death signal follows that thread).

#ifndef CRUNCH_DAEMON_CPU_KIND_PROBE_H_
#define CRUNCH_DAEMON_CPU_KIND_PROBE_H_

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/kind.h"
#include "daemon/plugin_files.h"

namespace crunch::daemon {

struct CpuKindCatalog {
  std::vector<KindSpec> kinds;  // CPU kinds without run functions, numbered by position.
  std::string digest;           // KindCatalogDigest: what each worker checks (--kinds-digest).
};

// FAILED_PRECONDITION with the worker's message if it cannot load the kinds,
// DEADLINE_EXCEEDED (the worker killed) if it takes longer than `timeout`.
absl::StatusOr<CpuKindCatalog> ProbeCpuKinds(const std::string& worker_path,
                                             const PluginFiles& plugins,
                                             std::chrono::milliseconds timeout);

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_CPU_KIND_PROBE_H_
