// Conversions between crunch.v1 messages and the daemon's own types.

#ifndef CRUNCH_RPC_PROTO_CONVERSION_H_
#define CRUNCH_RPC_PROTO_CONVERSION_H_

#include <chrono>

#include "crunch/v1/crunch.pb.h"
#include "daemon/scheduler.h"
#include "daemon/task.h"

namespace crunch::rpc {

// `left_out`: what the decoder left out of `request` for being over a limit
// (task_request_decoder.h); the task carries it on (TaskRequest::left_out).
daemon::TaskRequest FromProto(crunch::v1::TaskRequest&& request,
                              daemon::TaskRequest::LeftOut left_out = {});
void ToProto(const daemon::TaskResult& result, crunch::v1::TaskResult* out);
// A result for a task that was refused before it was accepted.
void RejectedToProto(uint64_t tag, const absl::Status& status, crunch::v1::TaskResult* out);
void ToProto(const daemon::KindRegistry& kinds, crunch::v1::ListKindsReply* out);
void ToProto(const daemon::SchedulerSnapshot& snapshot,
             std::chrono::steady_clock::time_point started, crunch::v1::DaemonStatus* out);

}  // namespace crunch::rpc

#endif  // CRUNCH_RPC_PROTO_CONVERSION_H_
