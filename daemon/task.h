// Task: what a caller asks for and what it gets back, independent of the
// transport that carried the request (gRPC today).

#ifndef CRUNCH_DAEMON_TASK_H_
#define CRUNCH_DAEMON_TASK_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "daemon/kind.h"

namespace crunch::daemon {

struct TaskRequest {
  std::string kind;
  std::string payload;
  std::map<std::string, std::string> params;
  uint64_t tag = 0;
  uint32_t timeout_ms = 0;  // 0 = the pool's default.
  // Time left before the caller stops waiting (0 = no deadline): the task's
  // timeout is at most this, whichever of the above applies.
  uint32_t call_timeout_ms = 0;
  int32_t priority = 0;  // Higher first; ties in arrival order.
  std::string idempotency_key;
  // Set when the transport left out a payload over [limits] max_payload_bytes
  // rather than copy it (`payload` is then empty): its size, and the limit it
  // was over then. Scheduler::Submit refuses such a request.
  struct UnreadPayload {
    uint64_t bytes = 0;
    uint64_t limit = 0;
  };
  std::optional<UnreadPayload> unread_payload;
};

struct TaskResult {
  uint64_t task_id = 0;
  uint64_t tag = 0;
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string error;
  std::string output;
  Pool pool = Pool::kCpu;
  uint32_t worker_pid = 0;
  uint64_t queue_us = 0;
  uint64_t run_us = 0;
};

// Called exactly once per accepted task, on the scheduler's thread.
using TaskDoneCallback = absl::AnyInvocable<void(const TaskResult&)>;

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_TASK_H_
