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
  // What the transport measured and left out rather than copy or parse, for
  // being over a limit (daemon/request_limits.h). Scheduler::Submit refuses
  // such a request, each check in its usual order.
  struct LeftOut {
    // A payload over [limits] max_payload_bytes (`payload` is then empty):
    // its size, and the limit then.
    uint64_t payload_bytes = 0;
    uint64_t payload_limit = 0;
    // Params over [limits] max_params or max_param_bytes (`params` is then
    // empty): the error, from TooManyParamsError or ParamTooLongError.
    absl::Status params;
  };
  LeftOut left_out;
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
