#include "ipc/spawn_worker.h"

#include "absl/strings/str_cat.h"

namespace crunch::ipc {

absl::StatusOr<ChildProcess> SpawnWorker(const DaemonChannel& channel, SpawnOptions options) {
  const WorkerHandoff ours = channel.Handoff();
  WorkerHandoff theirs = ours;
  theirs.segment_fd = 3;
  theirs.request_event_fd = 4;
  theirs.completion_event_fd = 5;
  options.fds.insert(options.fds.end(), {{ours.segment_fd, theirs.segment_fd},
                                         {ours.request_event_fd, theirs.request_event_fd},
                                         {ours.completion_event_fd, theirs.completion_event_fd}});
  options.env.push_back(absl::StrCat(kHandoffEnvironmentVariable, "=", theirs.Encode()));
  return ChildProcess::Spawn(options);
}

}  // namespace crunch::ipc
