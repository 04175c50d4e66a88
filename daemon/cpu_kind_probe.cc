#include "daemon/cpu_kind_probe.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "daemon/kinds/kind_catalog.h"
#include "ipc/child_process.h"
#include "ipc/unique_fd.h"

namespace crunch::daemon {
namespace {

// The most a catalog or an error message may take; a worker writing more is broken.
constexpr size_t kMaxOutputBytes = 16 << 20;

absl::Status Errno(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

absl::StatusOr<CpuKindCatalog> ProbeCpuKinds(const std::string& worker_path,
                                             const PluginFiles& plugins,
                                             std::chrono::milliseconds timeout) {
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return Errno("pipe2");
  ipc::UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return Errno("pipe2");
  ipc::UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);

  ipc::SpawnOptions spawn;
  spawn.path = worker_path;
  spawn.args.push_back("--describe");
  spawn.fds = {{out_write.get(), 1}, {err_write.get(), 2}};
  plugins.AddTo(&spawn);
  absl::StatusOr<ipc::ChildProcess> child = ipc::ChildProcess::Spawn(spawn);
  if (!child.ok()) return child.status();
  out_write.Reset();
  err_write.Reset();

  // Read both pipes to their end (the worker exiting closes them), or give up
  // at the deadline; destroying `child` then kills it.
  std::string out, err;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the worker (", worker_path, " --describe) did not list the CPU kinds within ",
          timeout.count(), " ms; a plugin's crunch_plugin_init may hang"));
    }
    pollfd fds[2] = {{out_open ? out_read.get() : -1, POLLIN, 0},
                     {err_open ? err_read.get() : -1, POLLIN, 0}};
    const int ready = poll(fds, 2, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) return Errno("poll");
    if (ready <= 0) continue;
    struct Stream {
      pollfd& poll_fd;
      int fd;
      bool& open;
      std::string& text;
    } streams[] = {{fds[0], out_read.get(), out_open, out},
                   {fds[1], err_read.get(), err_open, err}};
    for (Stream& s : streams) {
      if (!s.open || s.poll_fd.revents == 0) continue;
      char buffer[65536];
      const ssize_t n = read(s.fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        s.open = false;
        continue;
      }
      if (s.text.size() + static_cast<size_t>(n) > kMaxOutputBytes) {
        return absl::InternalError(absl::StrCat("the worker (", worker_path,
                                                " --describe) wrote more than ", kMaxOutputBytes,
                                                " bytes"));
      }
      s.text.append(buffer, static_cast<size_t>(n));
    }
  }
  absl::StatusOr<int> wait_status = child->Wait();
  if (!wait_status.ok()) return wait_status.status();
  if (!WIFEXITED(*wait_status) || WEXITSTATUS(*wait_status) != 0) {
    absl::string_view message = absl::StripAsciiWhitespace(err);
    absl::ConsumePrefix(&message, "crunch_worker: ");
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot load the CPU kinds: ",
        message.empty()
            ? absl::StrCat(worker_path, " --describe ", ipc::DescribeWaitStatus(*wait_status))
            : std::string(message)));
  }
  absl::StatusOr<std::vector<KindSpec>> kinds = DecodeKindCatalog(out);
  if (!kinds.ok()) return kinds.status();
  return CpuKindCatalog{.kinds = *std::move(kinds), .digest = KindCatalogDigest(out)};
}

}  // namespace crunch::daemon
