// SpawnWorker: starts a worker process attached to a DaemonChannel's slot.
//
// The child receives the segment and the slot's two eventfds as fds 3, 4 and 5
// and finds them through $CRUNCH_IPC (see WorkerHandoff); nothing else of the
// daemon's is inherited.

#ifndef CRUNCH_IPC_SPAWN_WORKER_H_
#define CRUNCH_IPC_SPAWN_WORKER_H_

#include "absl/status/statusor.h"
#include "ipc/child_process.h"
#include "ipc/daemon_channel.h"

namespace crunch::ipc {

// `options` names the program and anything else it should get; the channel's
// fds (at 3, 4, 5) and $CRUNCH_IPC are added to it.
// REQUIRES: the channel's slot has no live worker (new, or Reset()).
absl::StatusOr<ChildProcess> SpawnWorker(const DaemonChannel& channel, SpawnOptions options);

}  // namespace crunch::ipc

#endif  // CRUNCH_IPC_SPAWN_WORKER_H_
