// TargetList: how crunchctl turns --address into gRPC channel targets.
//
// One address is any gRPC target ("unix:/run/crunchd/crunchd.sock",
// "dns:///host:50051", "host:50051", ...) and is used as given; a bare path
// ("/tmp/x.sock") means a unix socket.
//
// A comma-separated list names several daemons to balance round-robin. Each
// entry becomes a target of its own, and crunchctl keeps one channel per
// daemon and rotates through them itself (connection.h). gRPC 1.51 can take
// such a list as ONE target ("unix:/a.sock,/b.sock", "ipv4:10.0.0.1:1,10.0.0.2:1",
// split by its sockaddr resolver) with the round_robin policy, and those
// spellings are accepted here too, but gRPC's own balancing does not suit a
// short-lived client: the channel turns READY with the first subchannel that
// connects, and a process making one call (or opening one stream per daemon
// right away) sends everything to that first daemon. Mixed lists
// ("unix:/a.sock,host:5000") are not one gRPC target at all.
//
// Thread safety: plain functions and values.

#ifndef CRUNCH_CLIENTS_CLI_TARGET_LIST_H_
#define CRUNCH_CLIENTS_CLI_TARGET_LIST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace crunch::cli {

struct TargetList {
  // One per daemon, in the order given.
  std::vector<std::string> targets;
};

// INVALID_ARGUMENT for an empty address or an empty entry in a list.
absl::StatusOr<TargetList> ParseTargetList(const std::string& address);

// A task as `crunchctl submit` names it: "ID" with one daemon, "ID@TARGET" with
// an address list (task ids are per daemon, so the id alone is ambiguous).
struct TaskRef {
  uint64_t id = 0;
  std::string target;  // Empty: the daemon --address names.
};

// Parses "42" or "42@unix:/run/b.sock"; INVALID_ARGUMENT saying what is
// allowed otherwise.
absl::StatusOr<TaskRef> ParseTaskRef(const std::string& text);
// "42", or "42@TARGET" when `target` is not empty.
std::string FormatTaskRef(uint64_t id, const std::string& target);

}  // namespace crunch::cli

#endif  // CRUNCH_CLIENTS_CLI_TARGET_LIST_H_
