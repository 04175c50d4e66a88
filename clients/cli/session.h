// Session: what every crunchctl command starts with. It connects to crunchd
// (see connection.h), knows the deadline of the command's calls and turns a
// failed call into crunchctl's message and exit status (exit_codes.h).
//
// Thread safety: the stub may be used from several threads; the rest is set up
// once and read.

#ifndef CRUNCH_CLIENTS_CLI_SESSION_H_
#define CRUNCH_CLIENTS_CLI_SESSION_H_

#include <grpcpp/client_context.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "clients/cli/connection.h"
#include "clients/cli/options.h"
#include "crunch/v1/crunch.grpc.pb.h"

namespace crunch::cli {

// Defaults of --deadline: quick queries get 5 s, calls that wait for a task none.
inline constexpr int64_t kQueryDeadlineMs = 5000;
inline constexpr int64_t kNoDeadline = 0;

class Session {
 public:
  // Connects. Returns 0 and sets `*session`, or prints why it cannot (bad
  // address: usage error; no connection: the "cannot reach" hint) and returns
  // the exit status.
  static int Start(const GlobalOptions& global, int64_t default_deadline_ms,
                   std::optional<Session>* session);

  crunch::v1::Crunch::Stub& stub() const { return *stub_; }
  // The daemon the calls go to: the --address entry that connected.
  std::string target() const { return connection_.TargetOf(channel_); }
  Connection& connection() { return connection_; }
  int64_t deadline_ms() const { return deadline_ms_; }

  // Gives `context` the call's deadline (nothing when there is none).
  void SetDeadline(grpc::ClientContext* context) const;

  // Prints a failed call as "crunchctl: CODE_NAME: message" (or the "lost the
  // connection" hint) and returns the exit status.
  int Fail(const grpc::Status& status) const;

 private:
  Session(Connection connection, std::shared_ptr<grpc::Channel> channel, int64_t deadline_ms);

  Connection connection_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<crunch::v1::Crunch::Stub> stub_;
  int64_t deadline_ms_;
};

// The resolved --deadline of a command.
int64_t DeadlineMs(const GlobalOptions& global, int64_t default_deadline_ms);
// How long to wait for the connection: kConnectTimeout, or less with a shorter deadline.
std::chrono::milliseconds ConnectTimeout(int64_t deadline_ms);

// "crunchctl: cannot reach crunchd at ADDR: REASON; is crunchd running? ..." -> kExitCannotConnect.
int ReportUnreachable(const std::string& address, std::string_view reason);
// The same for a connection lost during a call: "crunchctl: lost the connection to crunchd at ...".
int ReportConnectionLost(const std::string& address, std::string_view reason);
// "crunchctl: CODE_NAME: message" -> the code's exit status.
int ReportError(const grpc::Status& status);
// "crunchctl: message" -> kExitUsage.
int ReportUsage(std::string_view message);

}  // namespace crunch::cli

#endif  // CRUNCH_CLIENTS_CLI_SESSION_H_
