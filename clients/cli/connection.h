// Connection: crunchctl's channels to crunchd, and the check that one connects.
//
// Open() only builds channels (gRPC connects lazily). Connect() then waits up
// to a timeout for a channel to become READY, giving up as soon as gRPC reports
// TRANSIENT_FAILURE (a missing socket or a refused port fails at once), and
// returns gRPC's own reason when it cannot, so "cannot reach crunchd" is told
// apart from errors the daemon returns. An address list (target_list.h) gets
// one channel per daemon; Connect() tries them round-robin from a random start
// (so successive crunchctl runs spread over the daemons) and returns the first
// that connects, skipping dead ones.
//
// Security (options.h, SecurityOptions): unix sockets are always plaintext;
// other targets use TLS when any TLS option is given (crunchd serves TCP only
// over TLS). A token is sent on every call of every channel as
// "authorization: Bearer TOKEN", by a client interceptor.
//
// Thread safety: Open() and Connect() from one thread; the channels returned
// are gRPC channels, safe to use from any thread.

#ifndef CRUNCH_CLIENTS_CLI_CONNECTION_H_
#define CRUNCH_CLIENTS_CLI_CONNECTION_H_

#include <grpcpp/channel.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "clients/cli/options.h"

namespace crunch::cli {

// How long a command waits for the connection before reporting crunchd unreachable.
inline constexpr std::chrono::milliseconds kConnectTimeout{2000};

class Connection {
 public:
  // INVALID_ARGUMENT when `address` is not a usable address or list; an error
  // naming the option when a file `security` names cannot be read.
  static absl::StatusOr<Connection> Open(const std::string& address,
                                         const SecurityOptions& security = {});

  // The next channel (round-robin) that connects within `timeout`; UNAVAILABLE
  // with gRPC's reason (DEADLINE_EXCEEDED if still connecting) when none does.
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(std::chrono::milliseconds timeout);

  // `n` connected channels in round-robin order, to spread `n` calls over the
  // daemons: each connected daemon once before any twice. Fails only when none connects.
  absl::StatusOr<std::vector<std::shared_ptr<grpc::Channel>>> ConnectMany(
      size_t n, std::chrono::milliseconds timeout);

  const std::string& address() const { return address_; }
  // The target (one entry of the address list) `channel` goes to; "" if none.
  std::string TargetOf(const std::shared_ptr<grpc::Channel>& channel) const;
  // How many daemons the address names.
  size_t address_count() const { return channels_.size(); }

 private:
  Connection(std::string address, std::vector<std::string> targets,
             std::vector<std::shared_ptr<grpc::Channel>> channels, size_t next)
      : address_(std::move(address)),
        targets_(std::move(targets)),
        channels_(std::move(channels)),
        next_(next) {}

  std::string address_;
  std::vector<std::string> targets_;  // Parallel to channels_.
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  size_t next_;  // The channel Connect() tries first.
};

// Whether a failed call's UNAVAILABLE means the connection failed or was lost
// (the channel is no longer READY) rather than the daemon refusing the call
// over a live connection (draining).
bool IsConnectionLost(const grpc::Status& status, grpc::Channel& channel);

}  // namespace crunch::cli

#endif  // CRUNCH_CLIENTS_CLI_CONNECTION_H_
