#include "daemon/plugin_files.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace crunch::daemon {
namespace {

// One line of the fingerprint; the same for stat() of a path and fstat() of a held fd.
void AppendFileId(std::string* out, const std::string& path, const struct stat& st) {
  absl::StrAppend(out, path, ": ", st.st_dev, " ", st.st_ino, " ", st.st_size, " ",
                  st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, "\n");
}

}  // namespace

absl::StatusOr<std::shared_ptr<const PluginFiles>> PluginFiles::Open(
    const std::vector<std::string>& paths) {
  std::vector<ipc::UniqueFd> fds;
  for (const std::string& path : paths) {
    // The same words as the worker's loader (daemon/kinds/plugin_loader.cc).
    if (path.empty() || path[0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("plugin path '", path,
                       "' is not absolute; [plugins] paths takes absolute "
                       "paths to shared libraries"));
    }
    ipc::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot open plugin ", path, ": ", std::strerror(errno),
                       "; [plugins] paths takes readable shared libraries"));
    }
    fds.push_back(std::move(fd));
  }
  return std::shared_ptr<const PluginFiles>(new PluginFiles(paths, std::move(fds)));
}

std::string PluginFiles::Fingerprint() const {
  std::string out;
  for (size_t i = 0; i < fds_.size(); ++i) {
    struct stat st {};
    if (::fstat(fds_[i].get(), &st) != 0) {
      // Cannot happen for an open fd; never equal to a live file's line.
      absl::StrAppend(&out, paths_[i], ": fstat failed: ", std::strerror(errno), "\n");
      continue;
    }
    AppendFileId(&out, paths_[i], st);
  }
  return out;
}

void PluginFiles::AddTo(ipc::SpawnOptions* spawn) const {
  for (size_t i = 0; i < fds_.size(); ++i) {
    const int child_fd = kFirstPluginFd + static_cast<int>(i);
    spawn->fds.emplace_back(fds_[i].get(), child_fd);
    spawn->args.push_back(absl::StrCat("--plugin-fd=", child_fd, ":", paths_[i]));
  }
}

std::string PluginFilesFingerprint(const std::vector<std::string>& plugin_paths) {
  std::string out;
  for (const std::string& path : plugin_paths) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      absl::StrAppend(&out, path, ": missing\n");
      continue;
    }
    AppendFileId(&out, path, st);
  }
  return out;
}

}  // namespace crunch::daemon
