// WorkerHandoff: what a worker process needs to find its end of the transport
// after exec — the fd numbers it inherited and its slot — carried in one
// environment variable so a worker's argv stays its own.
//
//   CRUNCH_IPC="v1 segment=3 request=4 completion=5 slot=0 parent=1234"

#ifndef CRUNCH_IPC_WORKER_HANDOFF_H_
#define CRUNCH_IPC_WORKER_HANDOFF_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crunch::ipc {

inline constexpr char kHandoffEnvironmentVariable[] = "CRUNCH_IPC";

struct WorkerHandoff {
  int segment_fd = -1;
  int request_event_fd = -1;     // Rung by the daemon when it publishes requests.
  int completion_event_fd = -1;  // Rung by the worker when it publishes completions.
  uint32_t slot = 0;
  pid_t parent_pid = 0;  // The daemon; the worker exits when it is gone.

  std::string Encode() const;
  // Errors name the field and the expected form.
  static absl::StatusOr<WorkerHandoff> Parse(absl::string_view text);
  // Parses $CRUNCH_IPC; the error says the variable is missing if it is.
  static absl::StatusOr<WorkerHandoff> FromEnvironment();

  bool operator==(const WorkerHandoff&) const = default;
};

}  // namespace crunch::ipc

#endif  // CRUNCH_IPC_WORKER_HANDOFF_H_
