// crunch_worker: one CPU worker process. crunchd starts N of these (fork+exec)
// and talks to each through its slot of the shared segment; nobody else should
// start one by hand.
//
//   crunch_worker [--plugin=PATH | --plugin-fd=N:PATH]... [--kinds-digest=HEX]
//                 [--spin-ns=N] [--address-space-bytes=N] [--cpu-seconds=N]
//                 [--nice=N] [--open-files=N] [--no-seccomp]
//   crunch_worker --describe [--plugin=PATH | --plugin-fd=N:PATH]...
//
// Life: load the CPU kinds (the built-ins, then each plugin in the order
// given, see daemon/kinds/plugin_loader.h) and check they are the ones the
// daemon read (--kinds-digest), attach (the segment and eventfds arrive as
// inherited fds described by $CRUNCH_IPC), confine itself (resource limits,
// nice, then the seccomp filter: daemon/worker_limits.h,
// daemon/worker_seccomp.h), then loop forever: receive a descriptor, decode the parameters
// in front of the payload, run the kernel with its output going straight into
// the lent arena extent, complete. A failed task completes with the status
// code as the descriptor status and the message as its output; a kernel that
// runs out of memory (std::bad_alloc, under [cpu] worker_address_space_bytes)
// fails its task with RESOURCE_EXHAUSTED and the worker goes on. The worker
// exits when the daemon dies (parent-death signal) or when the daemon kills it
// (timeout, a cancel its kernel ignored, shutdown); it keeps no state a restart
// would lose. A cancel is first a request in the slot (SlotControl::
// cancel_request): a task not started yet is skipped, a running kernel sees it
// through crunch_task_should_stop() and ends CANCELLED.
//
// crunchd passes each plugin as --plugin-fd=N:PATH: the file it holds open
// (daemon/plugin_files.h) as inherited fd N, named PATH in every message and
// kind source. The worker loads that file even if another was put at PATH
// since (by PATH while it still is that file, else through /proc/self/fd/N;
// without /proc, by PATH: see InheritedPlugin), so a plugin rebuilt but not
// reloaded yet never reaches a worker started for the older kinds; then it
// closes fd N. --plugin=PATH loads whatever is at PATH (a worker run by hand).
//
// --describe loads the kinds the same way, writes their catalog to stdout
// (daemon/kinds/kind_catalog.h) and exits 0: that is how the daemon learns the
// kinds without running plugin code itself.
//
// Exit status: 0 never when serving (it is killed), 2 bad usage, 70 corrupt
// ring, 78 cannot load the kinds, attach or confine itself.

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "daemon/kinds/kind_catalog.h"
#include "daemon/kinds/plugin_loader.h"
#include "daemon/task_codec.h"
#include "daemon/worker_limits.h"
#include "daemon/worker_seccomp.h"
#include "ipc/child_process.h"
#include "ipc/worker_channel.h"

namespace crunch::daemon {
namespace {

// A --plugin=PATH (fd -1) or --plugin-fd=N:PATH.
struct PluginArg {
  int fd = -1;
  std::string path;
};

struct WorkerOptions {
  uint64_t spin_ns = 50'000;  // How long to spin for the next request before sleeping.
  WorkerLimits limits;
  std::vector<PluginArg> plugins;  // In the order given.
  std::string kinds_digest;        // Empty: not checked.
  bool describe = false;
};

// The built-ins and the plugins, then closes the inherited plugin fds: dlopen
// keeps its own mapping, and they should not count against the worker's fd
// table ([cpu] worker_open_files).
absl::StatusOr<std::vector<KindSpec>> LoadKinds(const WorkerOptions& options) {
  std::vector<PluginToLoad> to_load;
  absl::Status status;
  for (const PluginArg& plugin : options.plugins) {
    if (plugin.fd < 0) {
      to_load.push_back({.name = plugin.path, .load_path = plugin.path});
      continue;
    }
    absl::StatusOr<PluginToLoad> inherited = InheritedPlugin(plugin.fd, plugin.path);
    if (!inherited.ok()) {
      status = inherited.status();
      break;
    }
    to_load.push_back(*std::move(inherited));
  }
  absl::StatusOr<std::vector<KindSpec>> kinds =
      status.ok() ? LoadCpuKinds(to_load) : absl::StatusOr<std::vector<KindSpec>>(status);
  for (const PluginArg& plugin : options.plugins) {
    if (plugin.fd >= 0) ::close(plugin.fd);
  }
  return kinds;
}

int Describe(const WorkerOptions& options) {
  // A plugin's init may hang: do not outlive the daemon waiting for it.
  if (absl::Status s = ipc::ExitWhenParentDies(getppid()); !s.ok()) {
    std::fprintf(stderr, "crunch_worker: %s\n", std::string(s.message()).c_str());
    return 78;
  }
  absl::StatusOr<std::vector<KindSpec>> kinds = LoadKinds(options);
  if (!kinds.ok()) {
    std::fprintf(stderr, "crunch_worker: %s\n", std::string(kinds.status().message()).c_str());
    return 78;
  }
  const std::string catalog = EncodeKindCatalog(*kinds);
  if (std::fwrite(catalog.data(), 1, catalog.size(), stdout) != catalog.size() ||
      std::fflush(stdout) != 0) {
    std::fprintf(stderr, "crunch_worker: cannot write the kind catalog: %s\n",
                 std::strerror(errno));
    return 78;
  }
  return 0;
}

std::chrono::steady_clock::time_point DeadlineFrom(uint64_t deadline_ns) {
  if (deadline_ns == 0) return std::chrono::steady_clock::time_point::max();
  // steady_clock is CLOCK_MONOTONIC on Linux, the clock the daemon used.
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline_ns));
}

// Writes `status`'s message into the output extent (truncated to fit).
uint64_t WriteError(std::span<std::byte> out, const absl::Status& status) {
  const absl::string_view msg = status.message();
  const size_t n = std::min(out.size(), msg.size());
  std::memcpy(out.data(), msg.data(), n);
  return n;
}

int Serve(const WorkerOptions& options) {
  absl::StatusOr<ipc::WorkerHandoff> handoff = ipc::WorkerHandoff::FromEnvironment();
  if (!handoff.ok()) {
    std::fprintf(stderr, "crunch_worker: %s (it is started by crunchd)\n",
                 std::string(handoff.status().message()).c_str());
    return 78;
  }
  if (absl::Status s = ipc::ExitWhenParentDies(handoff->parent_pid); !s.ok()) {
    std::fprintf(stderr, "crunch_worker: %s\n", std::string(s.message()).c_str());
    return 78;
  }
  // Before attaching: a worker that cannot serve the daemon's kinds never
  // looks ready. Plugins' init runs here, before the limits and the filter.
  absl::StatusOr<std::vector<KindSpec>> loaded = LoadKinds(options);
  if (!loaded.ok()) {
    std::fprintf(stderr, "crunch_worker: %s\n", std::string(loaded.status().message()).c_str());
    return 78;
  }
  const std::vector<KindSpec> kinds = *std::move(loaded);
  if (!options.kinds_digest.empty() &&
      KindCatalogDigest(EncodeKindCatalog(kinds)) != options.kinds_digest) {
    std::fprintf(stderr,
                 "crunch_worker: the CPU kinds differ from those crunchd read at its start or "
                 "last reload (a [plugins] file changed since); reload crunchd (SIGHUP, "
                 "systemctl reload crunchd) to use the new ones\n");
    return 78;
  }
  absl::StatusOr<ipc::WorkerChannel> channel = ipc::WorkerChannel::Attach(*handoff);
  if (!channel.ok()) {
    std::fprintf(stderr, "crunch_worker: %s\n", std::string(channel.status().message()).c_str());
    return 78;
  }
  if (absl::Status s = ApplyWorkerLimits(options.limits); !s.ok()) {
    std::fprintf(stderr, "crunch_worker: cannot apply the [cpu] worker_* limits: %s\n",
                 std::string(s.message()).c_str());
    return 78;
  }
  if (options.limits.seccomp) {
    if (absl::Status s = InstallWorkerSeccompFilter(); !s.ok()) {
      std::fprintf(stderr, "crunch_worker: %s (set [cpu] seccomp = false to run without it)\n",
                   std::string(s.message()).c_str());
      return 78;
    }
  }
  const ipc::SpinPolicy spin{std::chrono::nanoseconds(options.spin_ns)};
  ipc::Descriptor d;
  for (;;) {
    if (channel->Receive(&d, spin) != ipc::RingResult::kOk) {
      std::fprintf(stderr, "crunch_worker: the request ring is corrupt\n");
      return 70;
    }
    std::span<std::byte> out = channel->Output(d);
    absl::Status status;
    uint64_t written = 0;
    if (channel->CancelRequested(d.task_id)) {
      status = absl::CancelledError("cancelled by request before it started");
    } else if (d.kind >= kinds.size()) {
      status = absl::InternalError(
          absl::StrCat("worker has no CPU kind number ", d.kind, " (daemon and worker differ)"));
    } else if (absl::StatusOr<DecodedTaskInput> input = DecodeTaskInput(channel->Input(d));
               !input.ok()) {
      status = input.status();
    } else {
      SpanOutput output(out);
      TaskContext context;
      context.deadline = DeadlineFrom(d.deadline_ns);
      context.cancel_request = &channel->cancel_request();
      context.task_id = d.task_id;
      try {
        status = kinds[d.kind].run(input->payload, input->params, context, output);
      } catch (const std::bad_alloc&) {
        status = absl::ResourceExhaustedError(
            absl::StrCat(kinds[d.kind].name, ": out of memory in the worker process",
                         options.limits.address_space_bytes != 0
                             ? absl::StrCat(" ([cpu] worker_address_space_bytes ",
                                            options.limits.address_space_bytes, ")")
                             : ""));
      }
      written = output.size();
    }
    if (!status.ok()) written = WriteError(out, status);
    if (channel->Complete(d, static_cast<uint32_t>(status.code()), written) !=
        ipc::RingResult::kOk) {
      std::fprintf(stderr, "crunch_worker: the completion ring is corrupt or full\n");
      return 70;
    }
  }
}

bool ParseFlag(std::string_view arg, std::string_view name, uint64_t* out) {
  if (arg.substr(0, name.size()) != name) return false;
  const std::string_view value = arg.substr(name.size());
  return absl::SimpleAtoi(absl::string_view(value.data(), value.size()), out);
}

bool ParseFlag(std::string_view arg, std::string_view name, std::string* out) {
  if (arg.substr(0, name.size()) != name || arg.size() == name.size()) return false;
  *out = std::string(arg.substr(name.size()));
  return true;
}

// --plugin-fd=N:PATH, N past the standard streams; false if malformed.
bool ParsePluginFd(std::string_view value, PluginArg* out) {
  const size_t colon = value.find(':');
  if (colon == std::string_view::npos || colon + 1 == value.size()) return false;
  int fd = -1;
  if (!absl::SimpleAtoi(absl::string_view(value.data(), colon), &fd) || fd <= 2) return false;
  out->fd = fd;
  out->path = std::string(value.substr(colon + 1));
  return true;
}

}  // namespace
}  // namespace crunch::daemon

int main(int argc, char** argv) {
  crunch::daemon::WorkerOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string error;
    if (crunch::daemon::ParseWorkerLimitsFlag(arg, &options.limits, &error)) {
      if (error.empty()) continue;
      std::fprintf(stderr, "crunch_worker: %s\n", error.c_str());
      return 2;
    }
    std::string plugin;
    if (crunch::daemon::ParseFlag(arg, "--plugin=", &plugin)) {
      options.plugins.push_back({.fd = -1, .path = std::move(plugin)});
      continue;
    }
    if (crunch::daemon::ParseFlag(arg, "--plugin-fd=", &plugin)) {
      crunch::daemon::PluginArg inherited;
      if (!crunch::daemon::ParsePluginFd(plugin, &inherited)) {
        std::fprintf(stderr,
                     "crunch_worker: bad argument '%s'; --plugin-fd takes N:PATH, N an inherited "
                     "file descriptor (3 or more) and PATH the plugin's configured path\n",
                     argv[i]);
        return 2;
      }
      options.plugins.push_back(std::move(inherited));
      continue;
    }
    if (arg == "--describe") {
      options.describe = true;
      continue;
    }
    if (!crunch::daemon::ParseFlag(arg, "--spin-ns=", &options.spin_ns) &&
        !crunch::daemon::ParseFlag(arg, "--kinds-digest=", &options.kinds_digest)) {
      std::fprintf(stderr,
                   "crunch_worker: bad argument '%s'; allowed: --plugin=PATH --plugin-fd=N:PATH "
                   "--kinds-digest=HEX "
                   "--describe --spin-ns=N --address-space-bytes=N --cpu-seconds=N --nice=N "
                   "--open-files=N --no-seccomp\n",
                   argv[i]);
      return 2;
    }
  }
  return options.describe ? crunch::daemon::Describe(options) : crunch::daemon::Serve(options);
}
