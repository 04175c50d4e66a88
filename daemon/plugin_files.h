// PluginFiles: the [plugins] files, held open so that every worker loads the
// files the running kinds came from.
//
// The daemon learns the CPU kinds once per start or reload (ProbeCpuKinds) and
// each worker checks that it loaded the same ones (--kinds-digest). Were the
// workers to open the configured paths themselves, a plugin rebuilt on disk
// but not reloaded yet (or whose reload failed) would reach every worker
// started after it — a crash, a timeout, a recycle — and each would refuse to
// serve. Instead the daemon opens each file once, before the probe, and hands
// the same open files to the probe and to every worker started for those
// kinds (crunch_worker --plugin-fd=N:PATH, loaded through /proc/self/fd/N).
// Replacing the file at a path (a new inode: a linker's output, `install`,
// `mv`) leaves what is held untouched until a reload opens the new one.
// Writing into the old file in place changes what is held too: see
// docs/plugins.md.
//
// Thread safety: immutable once opened; share it as shared_ptr<const
// PluginFiles> for as long as anything may start a worker with it.

#ifndef CRUNCH_DAEMON_PLUGIN_FILES_H_
#define CRUNCH_DAEMON_PLUGIN_FILES_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ipc/child_process.h"
#include "ipc/unique_fd.h"

namespace crunch::daemon {

class PluginFiles {
 public:
  // Where plugin i goes in a worker: fd kFirstPluginFd + i, clear of the
  // standard streams and of the channel's fds (3, 4, 5, ipc/spawn_worker.h).
  static constexpr int kFirstPluginFd = 16;

  // Opens each of `paths` (absolute, in [plugins] order) for reading.
  // INVALID_ARGUMENT for a relative path, FAILED_PRECONDITION naming the path
  // and the reason for one that cannot be opened.
  static absl::StatusOr<std::shared_ptr<const PluginFiles>> Open(
      const std::vector<std::string>& paths);

  PluginFiles(const PluginFiles&) = delete;
  PluginFiles& operator=(const PluginFiles&) = delete;

  const std::vector<std::string>& paths() const { return paths_; }

  // PluginFilesFingerprint(paths()) of the files as held (fstat): differs
  // from that of the paths once a file at one of them was replaced.
  std::string Fingerprint() const;

  // Gives a worker the files: each at fd kFirstPluginFd + i in `spawn->fds`,
  // and `--plugin-fd=N:PATH` in `spawn->args`, in [plugins] order.
  // The fds stay valid while this object lives.
  void AddTo(ipc::SpawnOptions* spawn) const;

 private:
  PluginFiles(std::vector<std::string> paths, std::vector<ipc::UniqueFd> fds)
      : paths_(std::move(paths)), fds_(std::move(fds)) {}

  std::vector<std::string> paths_;
  std::vector<ipc::UniqueFd> fds_;  // fds_[i] is paths_[i], opened O_RDONLY | O_CLOEXEC.
};

// What identifies the files at `plugin_paths` now (device, inode, size and
// modification time of each, or that it is missing), to tell on a reload
// whether any was added, removed or rebuilt.
std::string PluginFilesFingerprint(const std::vector<std::string>& plugin_paths);

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_PLUGIN_FILES_H_
