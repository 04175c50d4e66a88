#include "clients/cli/session.h"

#include <algorithm>
#include <cstdio>

#include "clients/cli/exit_codes.h"

namespace crunch::cli {

int64_t DeadlineMs(const GlobalOptions& global, int64_t default_deadline_ms) {
  return global.deadline_ms >= 0 ? global.deadline_ms : default_deadline_ms;
}

std::chrono::milliseconds ConnectTimeout(int64_t deadline_ms) {
  if (deadline_ms <= 0) return kConnectTimeout;
  return std::min(kConnectTimeout, std::chrono::milliseconds(deadline_ms));
}

namespace {

int ReportConnectionProblem(const char* what, const std::string& address, std::string_view reason) {
  std::fprintf(stderr,
               "crunchctl: %s crunchd at %s: %.*s; is crunchd running? "
               "(systemctl status crunchd)\n",
               what, address.c_str(), static_cast<int>(reason.size()), reason.data());
  return kExitCannotConnect;
}

}  // namespace

int ReportUnreachable(const std::string& address, std::string_view reason) {
  return ReportConnectionProblem("cannot reach", address, reason);
}

int ReportConnectionLost(const std::string& address, std::string_view reason) {
  return ReportConnectionProblem("lost the connection to", address, reason);
}

int ReportError(const grpc::Status& status) {
  std::fprintf(stderr, "crunchctl: %s: %s\n", CodeName(status.error_code()),
               status.error_message().c_str());
  return ExitCodeFor(status.error_code());
}

int ReportUsage(std::string_view message) {
  std::fprintf(stderr, "crunchctl: %.*s\n", static_cast<int>(message.size()), message.data());
  return kExitUsage;
}

Session::Session(Connection connection, std::shared_ptr<grpc::Channel> channel, int64_t deadline_ms)
    : connection_(std::move(connection)),
      channel_(std::move(channel)),
      stub_(crunch::v1::Crunch::NewStub(channel_)),
      deadline_ms_(deadline_ms) {}

int Session::Start(const GlobalOptions& global, int64_t default_deadline_ms,
                   std::optional<Session>* session) {
  absl::StatusOr<Connection> connection = Connection::Open(global.address, global.security);
  if (!connection.ok()) return ReportUsage(std::string(connection.status().message()));
  const int64_t deadline_ms = DeadlineMs(global, default_deadline_ms);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      connection->Connect(ConnectTimeout(deadline_ms));
  if (!channel.ok()) {
    return ReportUnreachable(global.address, std::string(channel.status().message()));
  }
  session->emplace(Session(*std::move(connection), *std::move(channel), deadline_ms));
  return kExitOk;
}

void Session::SetDeadline(grpc::ClientContext* context) const {
  if (deadline_ms_ > 0) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(deadline_ms_));
  }
}

int Session::Fail(const grpc::Status& status) const {
  if (IsConnectionLost(status, *channel_)) {
    return ReportConnectionLost(connection_.address(), status.error_message());
  }
  // gRPC's own words when the client's deadline passes; say which deadline.
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      status.error_message() == "Deadline Exceeded" && deadline_ms_ > 0) {
    return ReportError(grpc::Status(status.error_code(), "no answer within --deadline " +
                                                             std::to_string(deadline_ms_) + " ms"));
  }
  return ReportError(status);
}

}  // namespace crunch::cli
