// Task input codec: how a CPU task's validated parameters travel to a worker
// process, in front of its payload, inside the task's input extent.
//
//   u32 count | count x (u32 name_len | name | u32 value_len | value) | payload
//
// Little-endian (both ends are the same machine). The worker decodes
// defensively: a length that points past the extent is an error, never a read
// outside it.

#ifndef CRUNCH_DAEMON_TASK_CODEC_H_
#define CRUNCH_DAEMON_TASK_CODEC_H_

#include <cstddef>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/kind.h"

namespace crunch::daemon {

// The header that precedes the payload.
std::string EncodeParamsHeader(const TaskParams& params);

struct DecodedTaskInput {
  TaskParams params;
  std::span<const std::byte> payload;  // Points into the decoded input.
};

absl::StatusOr<DecodedTaskInput> DecodeTaskInput(std::span<const std::byte> input);

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_TASK_CODEC_H_
